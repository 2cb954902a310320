//! The Kafka consumer's gauges, refreshed once per flush, and its non-fatal errors.

use super::InternalEvent;
use crate::metrics::Metrics;

/// One partition stream's position: lag behind the high watermark (when known) and its
/// event-time floor (when it has one).
pub struct StreamPosition<'a> {
    pub topic: &'a str,
    pub stream: &'static str,
    pub partition: i32,
    pub lag: Option<i64>,
    pub floor_ms: Option<i64>,
}

impl InternalEvent for StreamPosition<'_> {
    fn emit(self, m: &Metrics) {
        let p = self.partition.to_string();
        if let Some(lag) = self.lag {
            m.lag.with_label_values(&[self.topic, &p]).set(lag.max(0));
        }
        if let Some(floor) = self.floor_ms {
            m.watermark
                .with_label_values(&[self.stream, &p])
                .set(floor / 1000);
        }
    }
}

/// Messages consumed since the last refresh, per topic and partition.
pub struct Consumed<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub count: u64,
}

impl InternalEvent for Consumed<'_> {
    fn emit(self, m: &Metrics) {
        m.consumed
            .with_label_values(&[self.topic, &self.partition.to_string()])
            .inc_by(self.count);
    }
}

/// Entries held in state, summed over the owned partitions.
pub struct StateSize {
    pub join_contacts: usize,
    pub join_pending_surveys: usize,
    /// Settled surveys a late contact can still re-credit.
    pub join_revisable_surveys: usize,
    pub open_windows: usize,
    pub dedup_ids: usize,
    /// Estimated bytes per kind: open windows (rows and buffered cells), interned segment
    /// strings, remembered ids, join contacts and pending surveys.
    pub bytes: StateBytes,
}

#[derive(Default)]
pub struct StateBytes {
    pub open_windows: usize,
    pub segments: usize,
    pub dedup_ids: usize,
    pub join: usize,
}

impl InternalEvent for StateSize {
    fn emit(self, m: &Metrics) {
        for (kind, n) in [
            ("join_contacts", self.join_contacts),
            ("join_pending_surveys", self.join_pending_surveys),
            ("join_revisable_surveys", self.join_revisable_surveys),
            ("open_windows", self.open_windows),
            ("dedup_ids", self.dedup_ids),
        ] {
            m.state
                .with_label_values(&[kind])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let b = &self.bytes;
        for (kind, n) in [
            ("open_windows", b.open_windows),
            ("segments", b.segments),
            ("dedup_ids", b.dedup_ids),
            ("join", b.join),
        ] {
            m.state_bytes
                .with_label_values(&[kind])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// librdkafka reported an error the consumer recovers from by itself.
pub struct ConsumerError<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for ConsumerError<'_> {
    fn emit(self, _m: &Metrics) {
        tracing::warn!(error = %self.error, "consumer error");
    }
}
