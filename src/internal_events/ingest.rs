//! Per-message occurrences of the ingest step: rejects and their reasons, late revisions,
//! repeats, registry waits.

use super::InternalEvent;
use crate::metrics::Metrics;
use std::time::Duration;

/// A message could not be decoded or validated (it goes to the dead-letter topic).
pub struct DecodeFailed<'a> {
    pub topic: &'a str,
    pub reason: &'static str,
}

impl InternalEvent for DecodeFailed<'_> {
    fn emit(self, m: &Metrics) {
        m.decode_errors
            .with_label_values(&[self.topic, self.reason])
            .inc();
    }
}

/// A message was rejected and handed to the dead-letter path.
pub struct DeadLettered<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub reason: &'static str,
}

impl InternalEvent for DeadLettered<'_> {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            reason = self.reason,
            "dead-lettered"
        );
        m.dead_lettered.with_label_values(&[self.reason]).inc();
    }
}

/// An event behind its stream's floor but within the late horizon: a correction row.
pub struct LateRevision<'a> {
    pub topic: &'a str,
}

impl InternalEvent for LateRevision<'_> {
    fn emit(self, m: &Metrics) {
        m.revised.with_label_values(&[self.topic]).inc();
    }
}

/// An event beyond the late horizon (dead-lettered as `too_late`).
pub struct TooLate<'a> {
    pub topic: &'a str,
}

impl InternalEvent for TooLate<'_> {
    fn emit(self, m: &Metrics) {
        m.late.with_label_values(&[self.topic]).inc();
    }
}

/// A repeated response or interaction id (dead-lettered as `duplicate`).
pub struct Duplicate<'a> {
    pub topic: &'a str,
}

impl InternalEvent for Duplicate<'_> {
    fn emit(self, m: &Metrics) {
        m.duplicates.with_label_values(&[self.topic]).inc();
    }
}

/// The registry could not be reached; the message waits and consumption of that
/// topic-partition is paused while every other partition goes on.
pub struct RegistryUnavailable<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a dyn std::fmt::Display,
    pub retry_in: Duration,
}

impl InternalEvent for RegistryUnavailable<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            error = %self.error,
            retry_in_ms = self.retry_in.as_millis() as u64,
            "schema registry unavailable; this partition waits, the others go on"
        );
        m.registry_retries.with_label_values(&[self.topic]).inc();
    }
}

/// The decoder's writer-schema lookups moved: published as deltas of its cumulative counts.
pub struct SchemaLookups<'a> {
    pub topics: &'a [String; 2],
    pub before: crate::codec::LookupStats,
    pub now: crate::codec::LookupStats,
}

impl InternalEvent for SchemaLookups<'_> {
    fn emit(self, m: &Metrics) {
        for (i, topic) in self.topics.iter().enumerate() {
            let requested = self.now.requests[i].saturating_sub(self.before.requests[i]);
            let throttled = self.now.throttled[i].saturating_sub(self.before.throttled[i]);
            m.schemas
                .lookups
                .with_label_values(&[topic, "requested"])
                .inc_by(requested);
            m.schemas
                .lookups
                .with_label_values(&[topic, "throttled"])
                .inc_by(throttled);
        }
        m.schemas
            .cache_evictions
            .inc_by(self.now.evicted.saturating_sub(self.before.evicted));
        m.schemas
            .cache_entries
            .set(i64::try_from(self.now.cached).unwrap_or(i64::MAX));
        m.schemas
            .cache_bytes
            .set(i64::try_from(self.now.cached_bytes).unwrap_or(i64::MAX));
    }
}
