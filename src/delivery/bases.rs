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
use super::store::{CheckpointRow, CheckpointStore, StoreError};
use crate::metrics::Business;
use crate::pipeline::partition::PartitionState;
use crate::sink::clickhouse::now_s;
use crate::sink::{ClickHouseSink, SinkError};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A base as the store handles it: the whole encoded state.
#[derive(Debug, Clone)]
pub struct BaseRow {
    pub consumer_group: String,
    pub source_partition: i32,
    pub epoch: u32,
    pub owner: u64,
    pub parity: u8,
    pub version: u64,
    pub state: Vec<u8>,
    /// Business counts of every fact the state's lineage produced (postcard).
    pub counts: Vec<u8>,
    pub written_at: u32,
}

/// A base is stored in chunks of at most this many bytes: one large value makes the server
/// allocate many times its size to read it back (ClickHouse 18.16 refused to read ~50 MB
/// partition states under `FINAL`, "would use 4.14 GiB", past its per-query limit).
const CHUNK_BYTES: usize = 4 << 20;

/// One stored piece of a base; `counts` rides with chunk 0.
#[derive(Row, Serialize, Deserialize, Debug, Clone)]
pub struct ChunkRow {
    consumer_group: String,
    source_partition: i32,
    epoch: u32,
    owner: u64,
    parity: u8,
    chunk: u32,
    version: u64,
    chunks: u32,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
    #[serde(with = "serde_bytes")]
    counts: Vec<u8>,
    written_at: u32,
}

/// The rows a base is stored as.
pub fn chunk_rows(b: &BaseRow) -> Vec<ChunkRow> {
    let pieces: Vec<&[u8]> = if b.state.is_empty() {
        vec![&[]]
    } else {
        b.state.chunks(CHUNK_BYTES).collect()
    };
    let chunks = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| ChunkRow {
            consumer_group: b.consumer_group.clone(),
            source_partition: b.source_partition,
            epoch: b.epoch,
            owner: b.owner,
            parity: b.parity,
            chunk: u32::try_from(i).unwrap_or(u32::MAX),
            version: b.version,
            chunks,
            state: piece.to_vec(),
            counts: if i == 0 { b.counts.clone() } else { Vec::new() },
            written_at: b.written_at,
        })
        .collect()
}

/// When a partition's next checkpoint writes a base.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub max_age: Duration,
    /// A `--final` run: a state a final run closed may be restored (it is final already).
    pub accept_final: bool,
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
        BaseRef {
            epoch,
            owner: self.at.owner,
            parity: 1 - self.at.parity.min(1),
            version,
        }
    }
}

/// A stored row, read back: the state and what its lineage counted and published.
pub(super) struct Restored {
    pub(super) state: PartitionState,
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
                if state.value.is_final_run() && !self.policy.accept_final {
                    return Err(self.refused(p, CheckpointError::Closed));
                }
                let cum = postcard::from_bytes(&base.counts)
                    .map_err(|e| self.refused(p, CheckpointError::Corrupt(e.to_string())))?;
                (state.value, cum, m.published)
            }
        };
        Ok(Restored {
            state,
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
            owner: at.owner,
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

/// Reads the base a mark points at, chunk by chunk, by its exact version (no `FINAL`: the
/// version names one write); `None` when a chunk is missing or was replaced, which only a
/// broken store can cause (the caller refuses to start rather than guess).
pub async fn read(
    sink: &ClickHouseSink,
    state_id: &str,
    p: i32,
    at: BaseRef,
) -> Result<Option<BaseRow>, SinkError> {
    let sql = format!(
        "SELECT ?fields FROM {}.checkpoint_bases WHERE consumer_group = ? \
         AND source_partition = ? AND epoch = ? AND owner = ? AND parity = ? AND version = ? \
         ORDER BY chunk",
        sink.database()
    );
    let mut rows: Vec<ChunkRow> = sink
        .retrying("SELECT", "checkpoint_bases", || {
            sink.client()
                .query(&sql)
                .bind(state_id)
                .bind(p)
                .bind(at.epoch)
                .bind(at.owner)
                .bind(at.parity)
                .bind(at.version)
                .fetch_all::<ChunkRow>()
        })
        .await?;
    rows.dedup_by_key(|r| r.chunk); // a retried insert stores a chunk twice
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let whole = usize::try_from(first.chunks).is_ok_and(|n| n == rows.len())
        && rows
            .iter()
            .enumerate()
            .all(|(i, r)| usize::try_from(r.chunk).is_ok_and(|c| c == i));
    if !whole {
        return Ok(None);
    }
    let counts = first.counts.clone();
    let written_at = first.written_at;
    // One allocation of the final size, each chunk freed once copied: a restore holds the
    // encoded base about once, not the chunks plus a doubling copy.
    let total = rows.iter().map(|r| r.state.len()).sum();
    let mut state = Vec::with_capacity(total);
    for r in rows {
        state.extend_from_slice(&r.state);
    }
    Ok(Some(BaseRow {
        consumer_group: state_id.to_string(),
        source_partition: p,
        epoch: at.epoch,
        owner: at.owner,
        parity: at.parity,
        version: at.version,
        state,
        counts,
        written_at,
    }))
}

/// Drops the rows of epochs before the previous one from `table` (`checkpoint_bases` or
/// `checkpoint_claims`): no mark can point at such a base any more (each owner writes its own
/// base when it claims), and only the highest claims matter to a later claim. The previous
/// epoch's rows are kept for a claim racing this one. A mutation, issued once per claim and
/// never waited for; best effort.
pub async fn drop_old_epochs(
    sink: &ClickHouseSink,
    table: &str,
    state_id: &str,
    claimed: &[(i32, u32)],
) {
    let old: Vec<String> = claimed
        .iter()
        .filter(|&&(_, epoch)| epoch > 2)
        .map(|&(p, epoch)| format!("(source_partition = {p} AND epoch < {})", epoch - 1))
        .collect();
    if old.is_empty() {
        return;
    }
    let sql = format!(
        "ALTER TABLE {}.{table} DELETE WHERE consumer_group = ? AND ({})",
        sink.database(),
        old.join(" OR ")
    );
    if let Err(e) = sink.client().query(&sql).bind(state_id).execute().await {
        tracing::debug!(error = %e, table, "rows of old epochs not dropped");
    }
}

/// A fault hook for the crash tests: `CXP_FAULT_CHECKPOINT=abort_after_bases` aborts the
/// process right after a routine checkpoint's bases are stored and before its marks are,
/// the one point inside the checkpoint path a SIGKILL from outside rarely hits.
pub fn fault_after_bases() -> bool {
    std::env::var("CXP_FAULT_CHECKPOINT").is_ok_and(|v| v == "abort_after_bases")
}

/// A fault hook for the ownership-race test: `CXP_FAULT_CLAIM_DELAY_MS` makes this
/// process's first claim wait that long between reading the stored epochs and inserting
/// its claim, as a claim retrying through a ClickHouse brownout would (the poll loop is
/// blocked meanwhile), so that another owner can claim the same epoch in between; with
/// `CXP_FAULT_CLAIM_ABORT=1` the process then aborts right after that claim is stored, a
/// late claimer that never comes back. Returns whether this claim was the delayed one.
pub async fn fault_claim_delay() -> bool {
    static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    let Some(ms) = std::env::var("CXP_FAULT_CLAIM_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return false;
    };
    if !FIRST.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return false;
    }
    tracing::warn!(ms, "CXP_FAULT_CLAIM_DELAY_MS: delaying this first claim");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    true
}

/// See [`fault_claim_delay`].
pub fn fault_claim_abort(delayed: bool) {
    if delayed && std::env::var("CXP_FAULT_CLAIM_ABORT").is_ok_and(|v| v == "1") {
        tracing::error!("CXP_FAULT_CLAIM_ABORT: aborting after the delayed claim");
        std::process::abort();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_is_stored_in_bounded_chunks_that_join_back_to_it() {
        let base = |len: usize| BaseRow {
            consumer_group: "g".into(),
            source_partition: 3,
            epoch: 2,
            owner: 5,
            parity: 1,
            version: 9,
            state: (0..len).map(|i| (i % 251) as u8).collect(),
            counts: vec![7; 10],
            written_at: 0,
        };
        for len in [0, 1, CHUNK_BYTES, CHUNK_BYTES + 1, 2 * CHUNK_BYTES + 5] {
            let b = base(len);
            let rows = chunk_rows(&b);
            assert_eq!(rows.len(), len.div_ceil(CHUNK_BYTES).max(1), "{len}");
            assert!(rows.iter().all(|r| r.state.len() <= CHUNK_BYTES));
            assert!(rows.iter().all(|r| r.chunks as usize == rows.len()));
            assert_eq!(rows[0].counts, b.counts);
            assert!(rows.iter().skip(1).all(|r| r.counts.is_empty()));
            let joined: Vec<u8> = rows.iter().flat_map(|r| r.state.clone()).collect();
            assert_eq!(joined, b.state);
        }
    }
}
