//! Compact ids for segments, so the per-event window work is a few small-key hash updates.
//!
//! An event's seven dimension values are looked up once, as a tuple, in a table that maps it
//! to the ids of its row key in every grouping set ("group keys"). A group key is a grouping
//! plus the values of the dimensions it keeps; every window row is (end, size, group key).
//! Strings are stored once per distinct value; the tuple table is only a cache and is
//! cleared if it grows past a bound, so memory stays flat under high-cardinality input.

use super::Grouping;
use crate::model::{DimValues, DIMENSIONS};
use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

const N: usize = DIMENSIONS.len();

/// Bound on cached dimension tuples; past it the cache starts over (ids stay valid).
const MAX_TUPLES: usize = 1 << 20;

/// A grouping index plus interned values of the kept dimensions (0 = not kept: "").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct GroupKey {
    pub grouping: u8,
    pub values: [u32; N],
}

struct Tuple {
    dims: [u32; N],
    keys: Box<[u32]>,
}

#[derive(Default)]
pub struct Segments {
    /// The strings of each group key, built once.
    key_dims: Vec<DimValues>,
    /// Distinct dimension values; id 0 is "".
    values: Vec<Arc<str>>,
    value_ids: FxHashMap<Arc<str>, u32>,
    keys: Vec<GroupKey>,
    key_ids: FxHashMap<GroupKey, u32>,
    tuples: Vec<Tuple>,
    tuple_index: HashTable<u32>,
    /// Bytes of the distinct values, for the state-size gauge.
    string_bytes: usize,
}

fn tuple_hash(dims: &[&str; N]) -> u64 {
    FxBuildHasher.hash_one(dims)
}

impl Segments {
    fn value(&mut self, s: &str) -> u32 {
        if self.values.is_empty() {
            self.values.push(Arc::from(""));
            self.value_ids.insert(Arc::from(""), 0);
        }
        if let Some(&id) = self.value_ids.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.string_bytes = self.string_bytes.saturating_add(s.len());
        let a: Arc<str> = Arc::from(s);
        self.values.push(a.clone());
        self.value_ids.insert(a, id);
        id
    }

    /// Id of a group key, created on first use.
    pub fn key(&mut self, k: GroupKey) -> u32 {
        if let Some(&id) = self.key_ids.get(&k) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(k);
        self.key_ids.insert(k, id);
        let dims = Arc::new(std::array::from_fn(|i| {
            self.values[k.values[i] as usize].clone()
        }));
        self.key_dims.push(dims);
        id
    }

    /// Group key ids of an event's dimension values, one per grouping set, in config order.
    pub fn keys_for(&mut self, dims: &[&str; N], groupings: &[Grouping]) -> &[u32] {
        let h = tuple_hash(dims);
        let found = {
            let (values, tuples) = (&self.values, &self.tuples);
            self.tuple_index
                .find(h, |&t| {
                    let t = &tuples[t as usize];
                    (0..N).all(|i| &*values[t.dims[i] as usize] == dims[i])
                })
                .copied()
        };
        let t = match found {
            Some(t) => t,
            None => self.insert_tuple(h, dims, groupings),
        };
        &self.tuples[t as usize].keys
    }

    #[cold]
    fn insert_tuple(&mut self, h: u64, dims: &[&str; N], groupings: &[Grouping]) -> u32 {
        if self.tuples.len() >= MAX_TUPLES {
            self.tuples.clear();
            self.tuple_index.clear();
        }
        let ids: [u32; N] = std::array::from_fn(|i| self.value(dims[i]));
        let keys =
            groupings
                .iter()
                .enumerate()
                .map(|(gi, g)| {
                    self.key(GroupKey {
                        grouping: gi as u8,
                        values: std::array::from_fn(|i| {
                            if g.mask & (1 << i) != 0 {
                                ids[i]
                            } else {
                                0
                            }
                        }),
                    })
                })
                .collect();
        let id = self.tuples.len() as u32;
        self.tuples.push(Tuple { dims: ids, keys });
        let (values, tuples) = (&self.values, &self.tuples);
        self.tuple_index.insert_unique(h, id, |&t| {
            let t = &tuples[t as usize];
            tuple_hash(&std::array::from_fn(|i| &*values[t.dims[i] as usize]))
        });
        id
    }

    /// The grouping index and dimension strings of a group key.
    pub fn resolve(&self, key: u32) -> (u8, DimValues) {
        (
            self.keys[key as usize].grouping,
            self.key_dims[key as usize].clone(),
        )
    }

    /// Id of a group key given by strings (checkpoint restore).
    pub fn intern(&mut self, grouping: u8, dims: &[Arc<str>; N]) -> u32 {
        let values = std::array::from_fn(|i| self.value(&dims[i]));
        self.key(GroupKey { grouping, values })
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    pub fn tuple_count(&self) -> usize {
        self.tuples.len()
    }

    pub fn string_bytes(&self) -> usize {
        self.string_bytes
    }
}
