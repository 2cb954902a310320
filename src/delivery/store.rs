//! The checkpoint store: where partition state lives between owners. It owns the format
//! (see [`super::format`]), the identity checks, the versions that order copies, and the
//! SQL. Each assignment takes a new ownership **epoch** for the partition (the stored epoch
//! plus one) and writes it at once; every later checkpoint first reads the stored epoch and
//! is refused if a newer owner has claimed the partition since. A checkpoint's version is
//! `epoch << 32 | sequence`, so the newest owner's newest copy wins whichever process wrote
//! it and whenever its counter restarted.

use super::format::{self, CheckpointError, SourceIdentity};
use crate::pipeline::partition::PartitionState;
use crate::pipeline::Settings;
use crate::sink::clickhouse::now_s;
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

#[derive(Row, Deserialize, Debug)]
struct Latest {
    source_partition: i32,
    version: u64,
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
    pub bytes: usize,
}

struct Owner {
    epoch: u32,
    seq: u32,
}

pub struct CheckpointStore {
    sink: Arc<ClickHouseSink>,
    state_id: String,
    settings: Settings,
    source: SourceIdentity,
    owned: BTreeMap<i32, Owner>,
}

impl CheckpointStore {
    pub fn new(
        sink: Arc<ClickHouseSink>,
        state_id: String,
        settings: Settings,
        source: SourceIdentity,
    ) -> Self {
        CheckpointStore {
            sink,
            state_id,
            settings,
            source,
            owned: BTreeMap::new(),
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

    /// The stored epoch per partition (absent: never checkpointed).
    async fn stored_epochs(&self, partitions: &[i32]) -> Result<BTreeMap<i32, u32>, SinkError> {
        let sql = format!(
            "SELECT source_partition, max(version) AS version FROM {}.checkpoints \
             WHERE consumer_group = ? AND source_partition IN ({}) GROUP BY source_partition",
            self.sink.database(),
            list(partitions)
        );
        let rows = self
            .sink
            .retrying("SELECT", "checkpoints", || {
                self.sink
                    .client()
                    .query(&sql)
                    .bind(&self.state_id)
                    .fetch_all::<Latest>()
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.source_partition, epoch_of(r.version)))
            .collect())
    }

    /// Refuses to start when any partition's saved state was built under other settings,
    /// by another format or against another Kafka source, before joining the group: no row
    /// may land under the wrong grouping and no offset may be skipped. Also collapses old
    /// copies (they collapse at merges anyway; this bounds what `FINAL` reads).
    pub async fn check_all(&self, partitions: i32) -> Result<(), StoreError> {
        let all: Vec<i32> = (0..partitions).collect();
        for row in self.load(&all).await? {
            format::check(&row.state, &self.settings, &self.source).map_err(|source| {
                StoreError::Refused {
                    state_id: self.state_id.clone(),
                    partition: row.source_partition,
                    source,
                }
            })?;
        }
        let sql = format!("OPTIMIZE TABLE {}.checkpoints FINAL", self.sink.database());
        if let Err(e) = self.sink.client().query(&sql).execute().await {
            tracing::debug!(error = %e, "checkpoint compaction skipped");
        }
        Ok(())
    }

    /// Takes partitions over: restores each one's latest state and writes it back at once
    /// under the next epoch, so a former owner that wakes up finds itself fenced.
    pub async fn claim(&mut self, partitions: &[i32]) -> Result<Vec<Claimed>, StoreError> {
        let mut by_p: BTreeMap<i32, CheckpointRow> = self
            .load(partitions)
            .await?
            .into_iter()
            .map(|r| (r.source_partition, r))
            .collect();
        let mut out = Vec::new();
        let mut rows = Vec::new();
        for &p in partitions {
            let refused = |source| StoreError::Refused {
                state_id: self.state_id.clone(),
                partition: p,
                source,
            };
            let (state, epoch, migrated, bytes) = match by_p.remove(&p) {
                Some(row) => {
                    let c = format::decode(&row.state, &self.settings, &self.source)
                        .map_err(refused)?;
                    let bytes = if c.migrated {
                        format::encode(&c.value, &self.settings, &self.source).map_err(refused)?
                    } else {
                        row.state
                    };
                    (c.value, epoch_of(row.version), c.migrated, bytes)
                }
                None => {
                    let st = PartitionState::new(p);
                    let bytes =
                        format::encode(&st, &self.settings, &self.source).map_err(refused)?;
                    (st, 0, false, bytes)
                }
            };
            let epoch = epoch.saturating_add(1);
            rows.push(self.row(p, checkpoint_version(epoch, 0), &state, bytes));
            self.owned.insert(p, Owner { epoch, seq: 0 });
            out.push(Claimed {
                state,
                epoch,
                migrated,
            });
        }
        self.sink.insert("checkpoints", &rows).await?;
        Ok(out)
    }

    fn row(&self, p: i32, version: u64, st: &PartitionState, state: Vec<u8>) -> CheckpointRow {
        CheckpointRow {
            consumer_group: self.state_id.clone(),
            source_partition: p,
            version,
            survey_offset: st.clocks[0].next_offset,
            interaction_offset: st.clocks[1].next_offset,
            state,
            written_at: now_s(),
        }
    }

    /// Writes the given partitions' states, except those a newer owner has claimed since
    /// (fenced: nothing is written for them and the caller must drop them). The epoch read
    /// and the insert are not atomic; a copy that slips through that gap still carries the
    /// older epoch and loses to the newer owner's.
    pub async fn save(&mut self, states: &[&PartitionState]) -> Result<Saved, StoreError> {
        let parts: Vec<i32> = states.iter().map(|s| s.partition).collect();
        if parts.is_empty() {
            return Ok(Saved::default());
        }
        let stored = self.stored_epochs(&parts).await?;
        let mut saved = Saved::default();
        let mut rows = Vec::new();
        for st in states {
            let p = st.partition;
            let Some(own) = self.owned.get(&p).map(|o| o.epoch) else {
                continue; // not ours (released or never claimed): never write it
            };
            let theirs = stored.get(&p).copied().unwrap_or(0);
            if theirs > own {
                self.owned.remove(&p);
                saved.fenced.push((p, own, theirs));
                continue;
            }
            let bytes = format::encode(st, &self.settings, &self.source).map_err(|source| {
                StoreError::Refused {
                    state_id: self.state_id.clone(),
                    partition: p,
                    source,
                }
            })?;
            let Some(o) = self.owned.get_mut(&p) else {
                continue;
            };
            o.seq = o.seq.saturating_add(1);
            let version = checkpoint_version(o.epoch, o.seq);
            saved.bytes += bytes.len();
            rows.push(self.row(p, version, st, bytes));
            saved.written.push(p);
        }
        self.sink.insert("checkpoints", &rows).await?;
        self.recheck(&rows, &mut saved).await?;
        Ok(saved)
    }

    /// Closes the gap between the epoch read and the insert: a newer owner that claimed a
    /// partition meanwhile either restored this very copy (its claim row holds the same
    /// offsets: this writer's facts are covered and stay counted here) or an older one
    /// (it replays them: not counted here). A claim row already merged away counts as the
    /// latter, which can only under-count, never double-count.
    async fn recheck(
        &mut self,
        rows: &[CheckpointRow],
        saved: &mut Saved,
    ) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let parts: Vec<i32> = rows.iter().map(|r| r.source_partition).collect();
        let stored = self.stored_epochs(&parts).await?;
        for r in rows {
            let p = r.source_partition;
            let own = epoch_of(r.version);
            let Some(&theirs) = stored.get(&p).filter(|&&e| e > own) else {
                continue;
            };
            let sql = format!(
                "SELECT survey_offset, interaction_offset FROM {}.checkpoints \
                 WHERE consumer_group = ? AND source_partition = ? AND version = ?",
                self.sink.database()
            );
            let claim: Vec<(i64, i64)> = self
                .sink
                .retrying("SELECT", "checkpoints", || {
                    self.sink
                        .client()
                        .query(&sql)
                        .bind(&self.state_id)
                        .bind(p)
                        .bind(checkpoint_version(theirs, 0))
                        .fetch_all()
                })
                .await?;
            self.owned.remove(&p);
            saved.fenced.push((p, own, theirs));
            if !claim.contains(&(r.survey_offset, r.interaction_offset)) {
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
        self.owned.remove(&p);
    }
}

fn list(partitions: &[i32]) -> String {
    partitions
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
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
