//! Checkpoint bases: the whole state of a partition, written only when it pays. A routine
//! checkpoint is a mark (offsets, a reference to a base and the counts published so far,
//! `cx.checkpoints`); the changes since the base are not written anywhere, because they are
//! already stored, in order, in the input topics: a new owner restores the base and reads
//! the topics again from the base's offsets up to where the mark stood (the source topics
//! are the changelog, as Kafka Streams does for source-table state). Replaying is exact
//! because the state is a function of the records read, never of their interleaving or of
//! batch boundaries (docs/DELIVERY.md).
//!
//! When a base is due ([`Policy`]): when the input folded since the last base reaches half
//! the base's size (so base writes cost at most twice the input they cover, and a restore
//! reads at most half a state's worth of input again), when the base is older than
//! `sink.snapshot_max_age` (so a replay never reaches past the topics' retention), and at
//! every final flush (a graceful handover leaves nothing to replay).

use super::format::{self, BaseRef, CheckpointError, Mark, Stored};
use super::store::{epoch_of, CheckpointRow, CheckpointStore, StoreError};
use crate::metrics::Business;
use crate::pipeline::partition::PartitionState;
use crate::sink::clickhouse::now_s;
use crate::sink::{ClickHouseSink, SinkError};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Row, Serialize, Deserialize, Debug, Clone)]
pub struct BaseRow {
    pub consumer_group: String,
    pub source_partition: i32,
    pub epoch: u32,
    pub parity: u8,
    pub version: u64,
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    /// Business counts of every fact the state's lineage produced (postcard).
    #[serde(with = "serde_bytes")]
    pub counts: Vec<u8>,
    pub written_at: u32,
}

impl BaseRow {
    pub fn reference(&self) -> BaseRef {
        BaseRef {
            epoch: self.epoch,
            parity: self.parity,
            version: self.version,
        }
    }
}

/// When a partition's next checkpoint writes a base.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub max_age: Duration,
}

/// What an owner knows of its partition's latest base.
pub struct BaseInfo {
    pub at: BaseRef,
    pub bytes: u64,
    pub written: Instant,
    /// Input bytes folded since the base's offsets.
    pub input_since: u64,
}

impl BaseInfo {
    pub fn new(at: BaseRef, bytes: usize, input_since: u64) -> Self {
        BaseInfo {
            at,
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
            written: Instant::now(),
            input_since,
        }
    }

    pub fn due(&self, policy: Policy, final_flush: bool) -> bool {
        final_flush
            || self.input_since.saturating_mul(2) >= self.bytes
            || self.written.elapsed() >= policy.max_age
    }

    /// Where the next base goes: the other parity, so the one the latest mark points at
    /// stays intact until a mark points elsewhere.
    pub fn next(&self, epoch: u32, version: u64) -> BaseRef {
        let parity = if epoch == self.at.epoch {
            1 - self.at.parity.min(1)
        } else {
            0
        };
        BaseRef {
            epoch,
            parity,
            version,
        }
    }
}

/// A stored row, read back: the state and what its lineage counted and published.
pub(super) struct Restored {
    pub(super) state: PartitionState,
    pub(super) epoch: u32,
    pub(super) migrated: bool,
    pub(super) cum: Business,
    pub(super) published: Business,
    /// The version of the row it came from.
    pub(super) from: u64,
}

impl CheckpointStore {
    /// The state a stored row stands for: inline (formats 2 and 3) or a mark's base.
    pub(super) async fn restore(&self, p: i32, row: CheckpointRow) -> Result<Restored, StoreError> {
        let c = format::decode_row(&row.state, &self.settings, &self.source)
            .map_err(|e| self.refused(p, e))?;
        let (state, cum, published) = match c.value {
            Stored::Inline(state) => (*state, Business::default(), Business::default()),
            Stored::Mark(m) => {
                let Some(base) = read(&self.sink, &self.state_id, p, m.base).await? else {
                    return Err(self.refused(
                        p,
                        CheckpointError::Corrupt(format!(
                            "the base its latest mark points at (epoch {}, version {}) is missing",
                            m.base.epoch, m.base.version
                        )),
                    ));
                };
                let state = format::decode(&base.state, &self.settings, &self.source)
                    .map_err(|e| self.refused(p, e))?;
                let cum = postcard::from_bytes(&base.counts)
                    .map_err(|e| self.refused(p, CheckpointError::Corrupt(e.to_string())))?;
                (state.value, cum, m.published)
            }
        };
        Ok(Restored {
            state,
            epoch: epoch_of(row.version),
            migrated: c.migrated,
            cum,
            published,
            from: row.version,
        })
    }

    pub(super) fn base_row(
        &self,
        p: i32,
        at: BaseRef,
        st: &PartitionState,
        cum: &Business,
    ) -> Result<BaseRow, StoreError> {
        let state =
            format::encode(st, &self.settings, &self.source).map_err(|e| self.refused(p, e))?;
        let counts = postcard::to_allocvec(cum)
            .map_err(|e| self.refused(p, CheckpointError::Corrupt(e.to_string())))?;
        Ok(BaseRow {
            consumer_group: self.state_id.clone(),
            source_partition: p,
            epoch: at.epoch,
            parity: at.parity,
            version: at.version,
            state,
            counts,
            written_at: now_s(),
        })
    }

    pub(super) fn mark_row(
        &self,
        p: i32,
        version: u64,
        st: &PartitionState,
        mark: &Mark,
    ) -> Result<CheckpointRow, StoreError> {
        let bytes = format::encode_mark(mark, &self.settings, &self.source)
            .map_err(|e| self.refused(p, e))?;
        let offsets = [st.clocks[0].next_offset, st.clocks[1].next_offset];
        Ok(mark_row(
            &self.state_id,
            p,
            version,
            offsets,
            bytes,
            now_s(),
        ))
    }
}

/// Reads the base a mark points at; `None` when it is missing or was replaced, which only
/// a broken store can cause (the caller refuses to start rather than guess).
pub async fn read(
    sink: &ClickHouseSink,
    state_id: &str,
    p: i32,
    at: BaseRef,
) -> Result<Option<BaseRow>, SinkError> {
    let sql = format!(
        "SELECT ?fields FROM {}.checkpoint_bases FINAL WHERE consumer_group = ? \
         AND source_partition = ? AND epoch = ? AND parity = ?",
        sink.database()
    );
    let rows: Vec<BaseRow> = sink
        .retrying("SELECT", "checkpoint_bases", || {
            sink.client()
                .query(&sql)
                .bind(state_id)
                .bind(p)
                .bind(at.epoch)
                .bind(at.parity)
                .fetch_all::<BaseRow>()
        })
        .await?;
    Ok(rows.into_iter().find(|r| r.version == at.version))
}

/// Drops the bases of epochs before the previous one: no mark can point at them any more
/// (each owner writes its own base when it claims). The previous epoch's are kept for a
/// claim racing this one. A mutation, issued once per claim and never waited for.
pub async fn collect_garbage(sink: &ClickHouseSink, state_id: &str, claimed: &[(i32, u32)]) {
    let old: Vec<String> = claimed
        .iter()
        .filter(|&&(_, epoch)| epoch > 2)
        .map(|&(p, epoch)| format!("(source_partition = {p} AND epoch < {})", epoch - 1))
        .collect();
    if old.is_empty() {
        return;
    }
    let sql = format!(
        "ALTER TABLE {}.checkpoint_bases DELETE WHERE consumer_group = ? AND ({})",
        sink.database(),
        old.join(" OR ")
    );
    if let Err(e) = sink.client().query(&sql).bind(state_id).execute().await {
        tracing::debug!(error = %e, "old checkpoint bases not dropped");
    }
}

/// A fault hook for the crash tests: `CXP_FAULT_CHECKPOINT=abort_after_bases` aborts the
/// process right after a routine checkpoint's bases are stored and before its marks are,
/// the one point inside the checkpoint path a SIGKILL from outside rarely hits.
pub fn fault_after_bases() -> bool {
    std::env::var("CXP_FAULT_CHECKPOINT").is_ok_and(|v| v == "abort_after_bases")
}

/// The mark row that goes with a checkpoint: offsets from the state, the mark as state.
fn mark_row(
    state_id: &str,
    p: i32,
    version: u64,
    offsets: [i64; 2],
    mark: Vec<u8>,
    written_at: u32,
) -> CheckpointRow {
    CheckpointRow {
        consumer_group: state_id.to_string(),
        source_partition: p,
        version,
        survey_offset: offsets[0],
        interaction_offset: offsets[1],
        state: mark,
        written_at,
    }
}
