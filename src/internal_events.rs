//! Everything the pipeline reports about itself, one struct per occurrence (Vector's
//! `internal_events` pattern): `emit()` writes the log line and moves the metrics together,
//! so a label or a log field cannot drift between call sites. Per-topic series are always
//! labelled with the topic's name. Survey content (comments, scores) never appears here.

use crate::metrics::Metrics;
use std::time::Duration;

pub trait InternalEvent {
    fn emit(self, m: &Metrics);
}

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

/// A partition was taken over: its state restored and a new ownership epoch written.
pub struct PartitionClaimed {
    pub partition: i32,
    pub epoch: u32,
    pub offsets: [i64; 2],
    pub migrated: bool,
}

impl InternalEvent for PartitionClaimed {
    fn emit(self, m: &Metrics) {
        tracing::info!(
            partition = self.partition,
            epoch = self.epoch,
            survey_offset = self.offsets[0],
            interaction_offset = self.offsets[1],
            migrated_from_format_2 = self.migrated,
            "partition assigned"
        );
        m.epoch
            .with_label_values(&[&self.partition.to_string()])
            .set(i64::from(self.epoch));
    }
}

/// A partition was given up after its final checkpoint (a revoke or a stop).
pub struct PartitionReleased {
    pub partition: i32,
}

impl InternalEvent for PartitionReleased {
    fn emit(self, m: &Metrics) {
        tracing::debug!(partition = self.partition, "partition released");
        m.epoch
            .with_label_values(&[&self.partition.to_string()])
            .set(0);
    }
}

/// A checkpoint was refused because another instance took the partition over since this
/// one claimed it (a newer epoch is stored): this instance stalled past the group's
/// timeouts. Its state is dropped unwritten; the owner's checkpoint stands.
pub struct PartitionFenced {
    pub partition: i32,
    pub own_epoch: u32,
    pub stored_epoch: u32,
}

impl InternalEvent for PartitionFenced {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            partition = self.partition,
            own_epoch = self.own_epoch,
            stored_epoch = self.stored_epoch,
            "partition fenced: another instance owns it now; dropping this instance's state for it unwritten"
        );
        m.fenced.with_label_values(&["fenced"]).inc();
        m.epoch
            .with_label_values(&[&self.partition.to_string()])
            .set(0);
    }
}

/// The group expelled this instance (it stopped polling past `max.poll.interval.ms` or its
/// session timed out): the partitions are someone else's already, so nothing is written.
pub struct PartitionsLost<'a> {
    pub partitions: &'a [i32],
}

impl InternalEvent for PartitionsLost<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            partitions = ?self.partitions,
            "assignment lost (this instance was expelled from the group); state dropped unwritten, the new owner resumes from the last checkpoint"
        );
        m.fenced
            .with_label_values(&["lost"])
            .inc_by(self.partitions.len() as u64);
        for p in self.partitions {
            m.epoch.with_label_values(&[&p.to_string()]).set(0);
        }
    }
}

/// Checkpoints were written (after the rows and dead letters they cover).
pub struct CheckpointsWritten {
    pub partitions: usize,
    pub bytes: usize,
}

impl InternalEvent for CheckpointsWritten {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            partitions = self.partitions,
            bytes = self.bytes,
            "checkpoints written"
        );
        m.checkpoints.inc_by(self.partitions as u64);
    }
}

/// An offset commit failed. The checkpoint already holds the offsets and the next owner
/// seeks to it, so this costs replay time, not correctness.
pub struct CommitFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
    pub asynchronous: bool,
}

impl InternalEvent for CommitFailed<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(error = %self.error, asynchronous = self.asynchronous, "offset commit failed");
        m.commit_errors.inc();
    }
}

/// The flush before giving partitions up failed; the next owner replays from the last
/// checkpoint that was written.
pub struct RevokeFlushFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for RevokeFlushFailed<'_> {
    fn emit(self, _: &Metrics) {
        tracing::warn!(error = %self.error, "flush before giving partitions up failed; the next owner replays from the last checkpoint");
    }
}

/// A ClickHouse statement (an insert, or a checkpoint read) failed.
pub struct ClickHouseFailed<'a> {
    pub op: &'static str,
    pub table: &'static str,
    pub attempt: u32,
    pub retryable: bool,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for ClickHouseFailed<'_> {
    fn emit(self, m: &Metrics) {
        let kind = if self.retryable {
            "retryable"
        } else {
            "permanent"
        };
        m.insert_errors.with_label_values(&[self.table, kind]).inc();
        if self.retryable {
            m.clickhouse_up.set(0);
            tracing::warn!(op = self.op, table = self.table, attempt = self.attempt, error = %self.error, "ClickHouse statement failed; retrying");
        } else {
            tracing::error!(op = self.op, table = self.table, attempt = self.attempt, error = %self.error, "ClickHouse statement failed permanently");
        }
    }
}

/// A ClickHouse insert was acknowledged.
pub struct InsertCompleted {
    pub table: &'static str,
    pub rows: usize,
    pub seconds: f64,
}

impl InternalEvent for InsertCompleted {
    fn emit(self, m: &Metrics) {
        m.clickhouse_up.set(1);
        m.insert_seconds
            .with_label_values(&[self.table])
            .observe(self.seconds);
        m.rows_written
            .with_label_values(&[self.table])
            .inc_by(self.rows as u64);
    }
}
