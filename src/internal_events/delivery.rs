//! Ownership, checkpoints and commits: what the committer does with partitions.

use super::InternalEvent;
use crate::metrics::Metrics;

/// A partition was taken over: its state restored and a new ownership epoch written.
pub struct PartitionClaimed {
    pub partition: i32,
    pub epoch: u32,
    pub offsets: [i64; 2],
    pub migrated: bool,
    /// Bytes of the state restored (and written back as the claim's base).
    pub state_bytes: usize,
}

impl InternalEvent for PartitionClaimed {
    fn emit(self, m: &Metrics) {
        tracing::info!(
            partition = self.partition,
            epoch = self.epoch,
            survey_offset = self.offsets[0],
            interaction_offset = self.offsets[1],
            migrated = self.migrated,
            state_bytes = self.state_bytes,
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
    /// Whole-state bases among them, and their bytes; the rest are marks.
    pub bases: usize,
    pub base_bytes: usize,
    pub bytes: usize,
}

impl InternalEvent for CheckpointsWritten {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            partitions = self.partitions,
            bases = self.bases,
            bytes = self.bytes,
            "checkpoints written"
        );
        m.checkpoints.inc_by(self.partitions as u64);
        let marks = self.bytes.saturating_sub(self.base_bytes);
        for (kind, n) in [("base", self.base_bytes), ("mark", marks)] {
            m.checkpoint_bytes
                .with_label_values(&[kind])
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
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
