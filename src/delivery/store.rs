//! The checkpoint store: where partition state lives between owners. It owns the format
//! (see [`super::format`]), the identity checks, the versions that order copies, and the
//! SQL. Each assignment takes a new ownership **epoch** for the partition (the stored epoch
//! plus one) and writes it at once; every later checkpoint first reads the stored epoch and
//! is refused if a newer owner has claimed the partition since. A checkpoint's version is
//! `epoch << 32 | sequence`, so the newest owner's newest copy wins whichever process wrote
//! it and whenever its counter restarted.

use super::bases::{self, BaseInfo, Policy, Restored};
use super::claims::{self, list};
use super::format::{self, BaseRef, CheckpointError, Mark, SourceIdentity, Stored};
use crate::metrics::Business;
use crate::pipeline::partition::PartitionState;
use crate::pipeline::Settings;
use crate::sink::{ClickHouseSink, SinkError};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Row, Serialize, Deserialize, Debug, Clone)]
pub struct CheckpointRow {
    pub consumer_group: String,
    pub source_partition: i32,
    pub version: u64,
    pub survey_offset: i64,
    pub interaction_offset: i64,
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    pub written_at: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("checkpoint of {state_id:?} for partition {partition} cannot be restored: {source}")]
    Refused {
        state_id: String,
        partition: i32,
        #[source]
        source: CheckpointError,
    },
    #[error("partitions {partitions:?} kept being claimed by another instance at the same time; giving up this claim")]
    Contended { partitions: Vec<i32> },
}

/// A random id for this process: the standard library's per-process random hash keys,
/// mixed with the process id and the clock.
fn claimant_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The epoch a stored checkpoint version carries.
pub fn epoch_of(version: u64) -> u32 {
    u32::try_from(version >> 32).unwrap_or(u32::MAX)
}

fn checkpoint_version(epoch: u32, seq: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(seq)
}

/// A partition taken over: its restored state and the epoch now held.
pub struct Claimed {
    pub state: PartitionState,
    pub epoch: u32,
    pub migrated: bool,
    /// Bytes of the state restored, written back as this owner's first base.
    pub base_bytes: usize,
}

/// What a save did: partitions written, and partitions refused because a newer owner's
/// epoch is stored (partition, own epoch, stored epoch).
#[derive(Default)]
pub struct Saved {
    /// Written, and the facts they cover are this writer's to count: no newer owner, or
    /// one that resumed from exactly this copy.
    pub written: Vec<i32>,
    /// Written, but a newer owner claimed the partition meanwhile from an older copy and
    /// replays (and counts) what this one covers: not to be counted here.
    pub superseded: Vec<i32>,
    pub fenced: Vec<(i32, u32, u32)>,
    /// Bytes written: bases and marks.
    pub bytes: usize,
    /// Bases among them (partitions), and their bytes.
    pub bases: usize,
    pub base_bytes: usize,
    /// Business counts now due for publishing, per written partition.
    pub publish: Vec<(i32, Business)>,
}

struct Owner {
    epoch: u32,
    seq: u32,
    base: BaseInfo,
    /// Counts of every fact of the lineage (goes into the next base).
    cum: Business,
    /// Counts published so far, by this owner and its predecessors (goes into each mark).
    published: Business,
}

pub struct CheckpointStore {
    pub(super) sink: Arc<ClickHouseSink>,
    pub(super) state_id: String,
    pub(super) settings: Settings,
    pub(super) source: SourceIdentity,
    pub(super) policy: Policy,
    owned: BTreeMap<i32, Owner>,
    /// What this process published for partitions it no longer owns: a later claim of the
    /// same partition by this process never publishes it again, whatever copy it restores
    /// (a stale claimer's claim can name less than this process already published).
    published_here: BTreeMap<i32, Business>,
    /// A random id of this process, in the keys of the bases it writes (see `BaseRef`).
    claimant: u64,
}

impl CheckpointStore {
    pub fn new(
        sink: Arc<ClickHouseSink>,
        state_id: String,
        settings: Settings,
        source: SourceIdentity,
        policy: Policy,
    ) -> Self {
        CheckpointStore {
            sink,
            state_id,
            settings,
            source,
            policy,
            owned: BTreeMap::new(),
            published_here: BTreeMap::new(),
            claimant: claimant_id(),
        }
    }

    pub(super) fn refused(&self, partition: i32, source: CheckpointError) -> StoreError {
        StoreError::Refused {
            state_id: self.state_id.clone(),
            partition,
            source,
        }
    }

    /// Input folded for an owned partition, counted towards its next base.
    pub fn note_input(&mut self, p: i32, bytes: usize) {
        if let Some(o) = self.owned.get_mut(&p) {
            let b = u64::try_from(bytes).unwrap_or(u64::MAX);
            o.base.input_since = o.base.input_since.saturating_add(b);
        }
    }

    /// Facts an owned partition produced, counted into its lineage's totals.
    pub fn add_counts(&mut self, p: i32, b: Business) {
        if let Some(o) = self.owned.get_mut(&p) {
            o.cum.merge(b);
        }
    }

    /// Latest copy per partition.
    async fn load(&self, partitions: &[i32]) -> Result<Vec<CheckpointRow>, SinkError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT ?fields FROM {}.checkpoints FINAL WHERE consumer_group = ? AND source_partition IN ({})",
            self.sink.database(),
            list(partitions)
        );
        self.sink
            .retrying("SELECT", "checkpoints", || {
                self.sink
                    .client()
                    .query(&sql)
                    .bind(&self.state_id)
                    .fetch_all::<CheckpointRow>()
            })
            .await
    }

    /// Refuses to start when any partition's saved state was built under other settings,
    /// by another format or against another Kafka source, before joining the group: no row
    /// may land under the wrong grouping and no offset may be skipped. Also collapses old
    /// copies (they collapse at merges anyway; this bounds what `FINAL` reads).
    pub async fn check_all(&mut self, partitions: i32) -> Result<(), StoreError> {
        let all: Vec<i32> = (0..partitions).collect();
        for row in self.load(&all).await? {
            format::check(&row.state, &self.settings, &self.source).map_err(|source| {
                StoreError::Refused {
                    state_id: self.state_id.clone(),
                    partition: row.source_partition,
                    source,
                }
            })?;
            if let Some(recorded) = format::recorded_source(&row.state) {
                for what in self.source.adopt_missing(&recorded) {
                    tracing::warn!(partition = row.source_partition, "the broker did not give {what} this time: keeping the one the checkpoints recorded (not verified at this start)");
                }
            }
        }
        let sql = format!("OPTIMIZE TABLE {}.checkpoints FINAL", self.sink.database());
        if let Err(e) = self.sink.client().query(&sql).execute().await {
            tracing::debug!(error = %e, "checkpoint compaction skipped");
        }
        Ok(())
    }

    /// Takes partitions over: restores each one's latest state (its base, which consumption
    /// replays forward from) and writes it back at once as this owner's first base and
    /// mark under the next epoch, so a former owner that wakes up finds itself fenced.
    pub async fn claim(&mut self, partitions: &[i32]) -> Result<Vec<Claimed>, StoreError> {
        let taken = claims::take(&self.sink, &self.state_id, self.claimant, partitions).await?;
        let won: Vec<i32> = taken.epochs.keys().copied().collect();
        let mut by_p: BTreeMap<i32, CheckpointRow> = self
            .load(&won)
            .await?
            .into_iter()
            .map(|r| (r.source_partition, r))
            .collect();
        let (mut out, mut marks, mut claimed) = (vec![], vec![], vec![]);
        for (&p, &epoch) in &taken.epochs {
            let mut r = match by_p.remove(&p) {
                Some(row) => self.restore(p, row).await?,
                None => Restored {
                    state: PartitionState::new(p),
                    migrated: false,
                    cum: Business::default(),
                    published: Business::default(),
                    from: 0,
                },
            };
            if let Some(here) = self.published_here.get(&p) {
                r.published.raise_to(here);
            }
            let version = checkpoint_version(epoch, 0);
            let at = BaseRef {
                epoch,
                owner: self.claimant,
                parity: 0,
                version,
            };
            let base = self.base_row(p, at, &r.state, &r.cum)?;
            let mark = Mark {
                base: at,
                restored_from: r.from,
                published: r.published.clone(),
            };
            marks.push(self.mark_row(p, version, &r.state, &mark)?);
            let base_bytes = base.state.len();
            let info = BaseInfo::new(at, base_bytes, 0);
            let chunks = bases::chunk_rows(&base);
            drop(base);
            self.sink.insert("checkpoint_bases", &chunks).await?;
            self.owned.insert(
                p,
                Owner {
                    epoch,
                    seq: 0,
                    base: info,
                    cum: r.cum,
                    published: r.published,
                },
            );
            claimed.push((p, epoch));
            out.push(Claimed {
                state: r.state,
                epoch,
                migrated: r.migrated,
                base_bytes,
            });
        }
        self.sink.insert("checkpoints", &marks).await?;
        bases::fault_claim_abort(taken.delayed);
        for table in ["checkpoint_bases", "checkpoint_claims"] {
            bases::drop_old_epochs(&self.sink, table, &self.state_id, &claimed).await;
        }
        Ok(out)
    }

    /// Checkpoints the given partitions, except those a newer owner has claimed since
    /// (fenced: nothing is written for them and the caller must drop them): a base where
    /// one is due (`final_flush` makes every one due), then a mark for each. The epoch read
    /// and the inserts are not atomic; a copy that slips through that gap still carries the
    /// older epoch and loses to the newer owner's.
    pub async fn save(
        &mut self,
        states: &[&PartitionState],
        final_flush: bool,
    ) -> Result<Saved, StoreError> {
        let parts: Vec<i32> = states.iter().map(|s| s.partition).collect();
        if parts.is_empty() {
            return Ok(Saved::default());
        }
        let stored = claims::stored_epochs(&self.sink, &self.state_id, &parts).await?;
        let mut saved = Saved::default();
        let (mut marks, mut new_bases) = (vec![], BTreeMap::new());
        for st in states {
            let p = st.partition;
            let Some(own) = self.owned.get(&p).map(|o| o.epoch) else {
                continue; // not ours (released or never claimed): never write it
            };
            let theirs = stored.get(&p).copied().unwrap_or(0);
            if theirs > own {
                self.disown(p);
                saved.fenced.push((p, own, theirs));
                continue;
            }
            let Some(o) = self.owned.get_mut(&p) else {
                continue;
            };
            o.seq = o.seq.saturating_add(1);
            let version = checkpoint_version(o.epoch, o.seq);
            let mut mark = Mark {
                base: o.base.at,
                restored_from: 0,
                published: o.published.clone(),
            };
            mark.published.raise_to(&o.cum);
            if o.base.due(self.policy, final_flush) {
                let at = o.base.next(o.epoch, version);
                let cum = o.cum.clone();
                let row = self.base_row(p, at, st, &cum)?;
                new_bases.insert(p, BaseInfo::new(at, row.state.len(), 0));
                saved.base_bytes += row.state.len() + row.counts.len();
                saved.bytes += row.state.len() + row.counts.len();
                // One partition's base at a time: a round never holds every partition's
                // whole state encoded at once.
                let chunks = bases::chunk_rows(&row);
                drop(row);
                self.sink.insert("checkpoint_bases", &chunks).await?;
                saved.bases += 1;
                mark.base = at;
            }
            let row = self.mark_row(p, version, st, &mark)?;
            saved.bytes += row.state.len();
            marks.push(row);
            saved.written.push(p);
        }
        if saved.bases > 0 && bases::fault_after_bases() {
            tracing::error!("CXP_FAULT_CHECKPOINT: aborting after the bases, before the marks");
            std::process::abort();
        }
        self.sink.insert("checkpoints", &marks).await?;
        self.recheck(&marks, &mut saved).await?;
        for &p in &saved.written {
            let Some(o) = self.owned.get_mut(&p) else {
                continue;
            };
            if let Some(info) = new_bases.remove(&p) {
                o.base = info;
            }
            saved.publish.push((p, o.cum.beyond(&o.published)));
            o.published.raise_to(&o.cum);
        }
        Ok(saved)
    }

    /// Closes the gap between the epoch read and the insert: a newer owner that claimed a
    /// partition meanwhile either restored this very copy (its claim mark names this row's
    /// version: this writer's facts are in the counts it took over, so they are published
    /// here) or an older one (it replays them and publishes them: not here). A claim row
    /// already merged away counts as the latter, which can only under-count, never
    /// double-count.
    async fn recheck(
        &mut self,
        rows: &[CheckpointRow],
        saved: &mut Saved,
    ) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let parts: Vec<i32> = rows.iter().map(|r| r.source_partition).collect();
        let stored = claims::stored_epochs(&self.sink, &self.state_id, &parts).await?;
        for r in rows {
            let p = r.source_partition;
            let own = epoch_of(r.version);
            let Some(&theirs) = stored.get(&p).filter(|&&e| e > own) else {
                continue;
            };
            let sql = format!(
                "SELECT ?fields FROM {}.checkpoints \
                 WHERE consumer_group = ? AND source_partition = ? AND version = ?",
                self.sink.database()
            );
            let claim: Vec<CheckpointRow> = self
                .sink
                .retrying("SELECT", "checkpoints", || {
                    self.sink
                        .client()
                        .query(&sql)
                        .bind(&self.state_id)
                        .bind(p)
                        .bind(checkpoint_version(theirs, 0))
                        .fetch_all::<CheckpointRow>()
                })
                .await?;
            // The newer owner restored this very copy when its claim names it.
            let same = claim.iter().any(|c| {
                matches!(
                    format::decode_row(&c.state, &self.settings, &self.source),
                    Ok(format::Checked { value: Stored::Mark(m), .. }) if m.restored_from == r.version
                )
            });
            self.disown(p);
            saved.fenced.push((p, own, theirs));
            if !same {
                saved.written.retain(|&w| w != p);
                saved.superseded.push(p);
            }
        }
        Ok(())
    }

    /// The epoch held for a partition; `None` when this instance does not own it.
    pub fn epoch(&self, p: i32) -> Option<u32> {
        self.owned.get(&p).map(|o| o.epoch)
    }

    pub fn epochs(&self) -> BTreeMap<i32, u32> {
        self.owned.iter().map(|(p, o)| (*p, o.epoch)).collect()
    }

    pub fn release(&mut self, p: i32) {
        self.disown(p);
    }

    /// Stops owning `p`, remembering what this process published for it.
    fn disown(&mut self, p: i32) {
        if let Some(o) = self.owned.remove(&p) {
            self.published_here
                .entry(p)
                .or_default()
                .raise_to(&o.published);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_epoch_then_sequence_and_rows_by_completeness_then_epoch() {
        assert!(checkpoint_version(2, 0) > checkpoint_version(1, u32::MAX));
        assert_eq!(epoch_of(checkpoint_version(7, 9)), 7);
    }
}
