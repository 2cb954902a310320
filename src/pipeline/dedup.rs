//! Repeated deliveries: survey tools and webhooks re-send a response with the same id before
//! it ever reaches Kafka, so producer idempotence cannot help. The first delivery of an id
//! in a partition wins; later ones are rejected as `duplicate` (the detail says whether the
//! content differs).
//!
//! Ids are remembered as 128-bit hashes with their event time, in arrival order, and
//! forgotten from the front once older than the stream's late horizon: an older repeat is
//! rejected as too late anyway. A cap bounds memory; past it the oldest go first. Both rules
//! depend only on the partition's order, so a replay decides exactly as the first run did.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Seen {
    event_ms: i64,
    id: u128,
    content: u64,
}

/// How a repeat compares with the first delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    Identical,
    Differs,
}

/// Checkpointed as the arrival-ordered list; the index is rebuilt on restore.
#[derive(Default)]
pub struct IdSet {
    order: VecDeque<Seen>,
    /// id -> (content hash, event time) of its first delivery.
    index: FxHashMap<u128, (u64, i64)>,
}

impl Serialize for IdSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.order.iter())
    }
}

impl<'de> Deserialize<'de> for IdSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let order: VecDeque<Seen> = VecDeque::deserialize(d)?;
        let index = order
            .iter()
            .map(|s| (s.id, (s.content, s.event_ms)))
            .collect();
        Ok(IdSet { order, index })
    }
}

impl IdSet {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes allocated: the arrival order's slots and the index's buckets (entry plus a
    /// control byte; hashbrown keeps at most 7/8 of its buckets full).
    pub fn bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u128, (u64, i64))>() + 1;
        let buckets = self.index.capacity().saturating_mul(8) / 7;
        self.order
            .capacity()
            .saturating_mul(std::mem::size_of::<Seen>())
            .saturating_add(buckets.saturating_mul(entry))
    }

    /// Records `id` unless it was seen with an event time at or after `horizon_ms`; ids
    /// older than that are forgotten (the front of the arrival order at once, the rest when
    /// they reach it), and beyond `cap` the oldest arrivals go first. `content` is the
    /// message payload, compared on a repeat.
    pub fn check(
        &mut self,
        id: &str,
        content: &[u8],
        event_ms: i64,
        horizon_ms: i64,
        cap: usize,
    ) -> Result<(), Repeat> {
        while self
            .order
            .front()
            .is_some_and(|s| s.event_ms < horizon_ms || self.order.len() >= cap)
        {
            if let Some(old) = self.order.pop_front() {
                // The id may have been delivered again after it expired; keep that one.
                if self.index.get(&old.id).is_some_and(|e| e.1 == old.event_ms) {
                    self.index.remove(&old.id);
                }
            }
        }
        let key = xxh3_128(id.as_bytes());
        let content = xxh3_64(content);
        if let Some(&(first, first_ms)) = self.index.get(&key) {
            if first_ms >= horizon_ms {
                return Err(if first == content {
                    Repeat::Identical
                } else {
                    Repeat::Differs
                });
            }
        }
        self.index.insert(key, (content, event_ms));
        self.order.push_back(Seen {
            event_ms,
            id: key,
            content,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_delivery_wins_and_repeats_say_whether_they_differ() {
        let mut s = IdSet::default();
        assert_eq!(s.check("r1", b"a", 10, 0, 100), Ok(()));
        assert_eq!(s.check("r1", b"a", 10, 0, 100), Err(Repeat::Identical));
        assert_eq!(s.check("r1", b"b", 99, 0, 100), Err(Repeat::Differs));
        assert_eq!(s.check("r2", b"a", 10, 0, 100), Ok(()));
    }

    #[test]
    fn ids_older_than_the_horizon_and_past_the_cap_are_forgotten_oldest_first() {
        let mut s = IdSet::default();
        for (i, t) in [5, 10, 20].iter().enumerate() {
            assert_eq!(s.check(&format!("r{i}"), b"x", *t, 0, 100), Ok(()));
        }
        // Horizon 11: r0 (5) and r1 (10) go; r2 stays.
        assert_eq!(s.check("new", b"x", 30, 11, 100), Ok(()));
        assert_eq!(s.len(), 2);
        assert_eq!(s.check("r0", b"x", 30, 11, 100), Ok(()));
        assert_eq!(s.check("r2", b"x", 30, 11, 100), Err(Repeat::Identical));
        // Cap 2: the oldest make room.
        assert_eq!(s.check("c", b"x", 40, 11, 2), Ok(()));
        assert!(s.len() <= 2);
    }

    #[test]
    fn an_id_whose_first_delivery_is_behind_the_horizon_counts_again() {
        let mut s = IdSet::default();
        assert_eq!(s.check("front", b"x", 100, 0, 100), Ok(()));
        assert_eq!(s.check("old", b"x", 5, 0, 100), Ok(()));
        // "old" is not at the front, so it is still stored, but it is past the horizon.
        assert_eq!(s.check("old", b"x", 50, 10, 100), Ok(()));
        assert_eq!(s.check("old", b"x", 50, 10, 100), Err(Repeat::Identical));
    }

    #[test]
    fn survives_a_checkpoint_round_trip() {
        let mut s = IdSet::default();
        s.check("r1", b"a", 10, 0, 100).ok();
        let bytes = postcard::to_allocvec(&s).unwrap_or_default();
        let mut back: IdSet = postcard::from_bytes(&bytes).unwrap_or_default();
        assert_eq!(back.check("r1", b"a", 10, 0, 100), Err(Repeat::Identical));
    }
}
