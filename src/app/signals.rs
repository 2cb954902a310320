//! SIGINT and SIGTERM fire the one shutdown. The handlers are registered before this
//! returns (not in a task that runs later), right after the runtime starts: a stop that
//! arrives while the job connects must still end in a clean exit.

use crate::shutdown::{self, Shutdown};

pub fn install(rt: &tokio::runtime::Runtime) -> Shutdown {
    let (trigger, shutdown) = shutdown::channel();
    rt.block_on(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::spawn(async move {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                tracing::info!("signal received; stopping after the current batch");
                trigger.fire();
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            trigger.fire();
        });
    });
    shutdown
}
