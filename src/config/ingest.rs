//! The `[ingest]` section: what a well-formed event must also satisfy before it may move a
//! clock or count (docs/SEMANTICS.md: "What is rejected").

use super::duration;
use crate::pipeline::limits::Limits;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// An event time further ahead of its Kafka record's timestamp than this is a client
    /// clock error (or microseconds sent as milliseconds), not data.
    pub max_future_skew: String,
    /// Event times before this instant (RFC 3339) are rejected: a zero or negative
    /// timestamp is a missing value, not a survey from 1970.
    pub min_event_time: String,
    /// A talk, hold or wrap-up time above this is rejected (one contact in microseconds
    /// would otherwise own the AHT of every window it lands in).
    pub max_duration: String,
    /// Response and interaction ids remembered per partition and stream to drop repeated
    /// deliveries; past the cap the oldest are forgotten first.
    pub max_ids_per_partition: usize,
    /// Longest id or segment value (region, team, agent, ...) accepted, in bytes; a longer
    /// one is dead-lettered as `too_long`.
    pub max_key_bytes: usize,
    /// Longest survey comment accepted, in bytes; a longer one is dead-lettered as
    /// `too_long` (a pending survey holds its comment in memory until it settles).
    pub max_comment_bytes: usize,
    /// Open window rows one partition may hold (about 200 bytes each with its segment
    /// strings); past it the oldest windows close early (docs/SEMANTICS.md).
    pub max_open_rows_per_partition: usize,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            max_future_skew: "1h".into(),
            min_event_time: "2000-01-01T00:00:00Z".into(),
            max_duration: "1d".into(),
            max_ids_per_partition: 5_000_000,
            max_key_bytes: 256,
            max_comment_bytes: 16_384,
            max_open_rows_per_partition: 1_000_000,
        }
    }
}

impl IngestSection {
    pub(super) fn validate(&self, errs: &mut Vec<String>) -> Limits {
        let skew = duration("ingest.max_future_skew", &self.max_future_skew, errs);
        let max_duration = duration("ingest.max_duration", &self.max_duration, errs);
        if max_duration.is_zero() {
            errs.push("ingest.max_duration must be > 0".into());
        }
        let min_event_ms = match humantime::parse_rfc3339(&self.min_event_time) {
            Ok(t) => t
                .duration_since(std::time::UNIX_EPOCH)
                .map(super::millis)
                .unwrap_or(0),
            Err(e) => {
                errs.push(format!(
                    "ingest.min_event_time = {:?}: {e} (use e.g. \"2000-01-01T00:00:00Z\")",
                    self.min_event_time
                ));
                0
            }
        };
        if self.max_ids_per_partition == 0 {
            errs.push("ingest.max_ids_per_partition must be > 0".into());
        }
        if !(16..=65_536).contains(&self.max_key_bytes) {
            errs.push("ingest.max_key_bytes must be between 16 and 65536".into());
        }
        if !(256..=1_048_576).contains(&self.max_comment_bytes) {
            errs.push("ingest.max_comment_bytes must be between 256 and 1048576".into());
        }
        if self.max_open_rows_per_partition < 1000 {
            errs.push("ingest.max_open_rows_per_partition must be at least 1000".into());
        }
        Limits {
            max_future_skew_ms: super::millis(skew),
            min_event_ms,
            max_duration_ms: super::millis(max_duration),
            max_ids: self.max_ids_per_partition,
            max_key_bytes: self.max_key_bytes,
            max_comment_bytes: self.max_comment_bytes,
            max_open_rows: self.max_open_rows_per_partition,
        }
    }
}
