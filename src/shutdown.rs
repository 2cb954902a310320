//! One shutdown handle for every job, as mini-redis's `Shutdown`: the signal handlers (or a
//! test) fire the [`Trigger`]; loops on plain threads ask [`Shutdown::is_set`] between
//! batches, async loops await [`Shutdown::wait`] beside their work, so a stop is seen at
//! once instead of at the next poll of a flag.

use tokio::sync::watch;

/// Fires the shutdown; dropping it does not.
pub struct Trigger(watch::Sender<bool>);

/// A cloneable view of the shutdown.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new, unset shutdown and the trigger that sets it.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the shutdown is set (at once if it already is).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the trigger is gone without firing: never resolve.
        if rx.wait_for(|set| *set).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_resolves_after_fire_and_is_set_follows() {
        let (trigger, shutdown) = channel();
        assert!(!shutdown.is_set());
        let waiter = tokio::spawn({
            let s = shutdown.clone();
            async move { s.wait().await }
        });
        trigger.fire();
        assert!(waiter.await.is_ok());
        assert!(shutdown.is_set());
        shutdown.wait().await; // already set: returns at once
    }
}
