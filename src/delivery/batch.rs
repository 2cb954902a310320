//! The batching policy, in one type as clickhouse-rs's `Inserter` keeps it: a batch is
//! handed to the sink when it holds `max_rows` rows, or `max_bytes` of consumed payload
//! (bounding memory held between flushes), or `period` has passed since the last flush.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub period: Duration,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            period: Duration::from_secs(2),
        }
    }
}

/// What the current batch holds, against its policy.
#[derive(Debug)]
pub(super) struct Filling {
    pub policy: Batch,
    pub bytes: usize,
    pub started: Instant,
}

impl Filling {
    pub fn new(policy: Batch) -> Self {
        Filling {
            policy,
            bytes: 0,
            started: Instant::now(),
        }
    }

    /// Whether a batch with `rows` pending rows must go now.
    pub fn full(&self, rows: usize) -> bool {
        rows >= self.policy.max_rows
            || self.bytes >= self.policy.max_bytes
            || self.started.elapsed() >= self.policy.period
    }

    /// A new batch starts.
    pub fn reset(&mut self) {
        self.bytes = 0;
        self.started = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_full_at_any_of_its_three_limits_and_empty_after_reset() {
        let policy = Batch {
            max_rows: 10,
            max_bytes: 100,
            period: Duration::from_secs(3600),
        };
        let mut b = Filling::new(policy);
        assert!(!b.full(9));
        assert!(b.full(10), "rows");
        b.bytes = 100;
        assert!(b.full(0), "bytes");
        b.reset();
        assert!(!b.full(0));
        let mut quick = Filling::new(Batch {
            period: Duration::ZERO,
            ..policy
        });
        assert!(quick.full(0), "period");
        quick.reset();
        assert_eq!(quick.bytes, 0);
    }
}
