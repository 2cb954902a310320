//! Taking a partition's ownership: a compare-and-set built on what a single ClickHouse
//! server does provide, read-your-writes on an append-only table.
//!
//! A claimant reads the highest epoch stored for the partition (in the marks or in the
//! claims), appends a claim row at that epoch plus one, and then reads the claims again: if
//! any other claimant has a row at its epoch or above, it yields and tries again later at a
//! higher epoch. Of two claimants at one epoch at most one wins: if neither saw the other,
//! each one's read came before the other's insert, which came before that one's own read, a
//! cycle. Both may yield (each saw the other); a random pause before the next attempt breaks
//! the tie. Until the winner's mark lands, its claim row already fences older owners
//! (`stored_epochs` reads both tables), and its restore reads the marks only after the claim
//! is won, so an older owner that saw no claim when it re-checked its own checkpoint knows
//! the next owner resumes from that checkpoint or a later one.
//!
//! The argument needs one copy that every read sees after every acknowledged insert: one
//! server, as here. On a replicated cluster the claims need `insert_quorum` covering all
//! replicas and `select_sequential_consistency = 1`; that is not configured for you.

use super::store::{epoch_of, StoreError};
use crate::rng::Rng;
use crate::sink::clickhouse::now_s;
use crate::sink::{ClickHouseSink, SinkError};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Attempts before a claim gives up: with the pauses below, about half a minute of a rival
/// claiming the same partitions at the same time, which only a second live owner does.
const MAX_ATTEMPTS: u32 = 12;

#[derive(Row, Serialize, Deserialize, Debug)]
struct ClaimRow {
    consumer_group: String,
    source_partition: i32,
    epoch: u32,
    owner: u64,
    claimed_at: u32,
}

#[derive(Row, Deserialize, Debug)]
struct Latest {
    source_partition: i32,
    version: u64,
}

#[derive(Row, Deserialize, Debug)]
struct Rival {
    source_partition: i32,
}

/// Partitions won, with their epochs; and whether the fault hook delayed this claim.
pub struct Taken {
    pub epochs: BTreeMap<i32, u32>,
    pub delayed: bool,
}

/// The highest epoch per partition, claimed or checkpointed (absent: neither ever).
pub async fn stored_epochs(
    sink: &ClickHouseSink,
    state_id: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, u32>, SinkError> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let (db, list) = (sink.database(), list(partitions));
    let sql = format!(
        "SELECT source_partition, max(version) AS version FROM (\
           SELECT source_partition, version FROM {db}.checkpoints \
           WHERE consumer_group = ? AND source_partition IN ({list}) \
           UNION ALL \
           SELECT source_partition, bitShiftLeft(toUInt64(epoch), 32) AS version \
           FROM {db}.checkpoint_claims \
           WHERE consumer_group = ? AND source_partition IN ({list})\
         ) GROUP BY source_partition"
    );
    let rows = sink
        .retrying("SELECT", "checkpoint_claims", || {
            sink.client()
                .query(&sql)
                .bind(state_id)
                .bind(state_id)
                .fetch_all::<Latest>()
        })
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.source_partition, epoch_of(r.version)))
        .collect())
}

/// Claims each partition at a new epoch, retrying those a rival claimed at the same time.
pub async fn take(
    sink: &ClickHouseSink,
    state_id: &str,
    owner: u64,
    partitions: &[i32],
) -> Result<Taken, StoreError> {
    let mut todo = partitions.to_vec();
    let mut taken = Taken {
        epochs: BTreeMap::new(),
        delayed: false,
    };
    let mut rng = Rng::new(owner);
    // A member assigned nothing (a rebalance can leave one empty-handed) claims nothing:
    // there is no query to make.
    if todo.is_empty() {
        return Ok(taken);
    }
    for attempt in 0..MAX_ATTEMPTS {
        let stored = stored_epochs(sink, state_id, &todo).await?;
        let want: BTreeMap<i32, u32> = todo
            .iter()
            .map(|&p| (p, stored.get(&p).copied().unwrap_or(0).saturating_add(1)))
            .collect();
        taken.delayed |= super::bases::fault_claim_delay().await;
        let rows: Vec<ClaimRow> = want
            .iter()
            .map(|(&p, &epoch)| ClaimRow {
                consumer_group: state_id.to_string(),
                source_partition: p,
                epoch,
                owner,
                claimed_at: now_s(),
            })
            .collect();
        sink.insert("checkpoint_claims", &rows).await?;
        let rivals = rivals(sink, state_id, owner, &want).await?;
        for (&p, &epoch) in &want {
            if !rivals.contains(&p) {
                tracing::info!(partition = p, epoch, "claim won");
                taken.epochs.insert(p, epoch);
            }
        }
        todo.retain(|p| rivals.contains(p));
        if todo.is_empty() {
            return Ok(taken);
        }
        tracing::warn!(partitions = ?todo, attempt, "a rival claimed these partitions at the same time: yielding, then claiming again");
        let cap = 100u64 << attempt.min(5);
        tokio::time::sleep(Duration::from_millis(20 + rng.below(cap))).await;
    }
    Err(StoreError::Contended { partitions: todo })
}

/// Partitions where another claimant holds a claim at the wanted epoch or above.
async fn rivals(
    sink: &ClickHouseSink,
    state_id: &str,
    owner: u64,
    want: &BTreeMap<i32, u32>,
) -> Result<BTreeSet<i32>, SinkError> {
    if want.is_empty() {
        return Ok(BTreeSet::new());
    }
    let cond: Vec<String> = want
        .iter()
        .map(|(p, e)| format!("(source_partition = {p} AND epoch >= {e})"))
        .collect();
    let sql = format!(
        "SELECT DISTINCT source_partition FROM {}.checkpoint_claims \
         WHERE consumer_group = ? AND owner != ? AND ({})",
        sink.database(),
        cond.join(" OR ")
    );
    let rows = sink
        .retrying("SELECT", "checkpoint_claims", || {
            sink.client()
                .query(&sql)
                .bind(state_id)
                .bind(owner)
                .fetch_all::<Rival>()
        })
        .await?;
    Ok(rows.into_iter().map(|r| r.source_partition).collect())
}

pub fn list(partitions: &[i32]) -> String {
    partitions
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
