//! The checkpoint form of the open windows: rows by full key, so a checkpoint does not
//! depend on this process's interned segment ids.

use super::aggregate::Partial;
use super::{Pend, Slot, WindowKey, WindowState};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The checkpoint form: rows by full key, so it does not depend on this process's ids.
#[derive(Serialize, Deserialize)]
struct Saved {
    rows: Vec<(WindowKey, Partial, bool, u64)>,
    buffer: Vec<(i64, WindowKey, Pend)>,
    removals: Vec<(i64, WindowKey, Pend)>,
}

impl Serialize for WindowState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut rows = Vec::with_capacity(self.open_rows);
        for (size, ends) in &self.open {
            for (&end, r) in ends {
                for (&k, slot) in r {
                    let u = self.update(*size, end, k, slot.partial, false, 0);
                    rows.push((u.key, u.partial, slot.dirty, slot.ops));
                }
            }
        }
        let cells = |m: &FxHashMap<(i64, u32), Pend>| -> Vec<(i64, WindowKey, Pend)> {
            m.iter()
                .map(|(&(cell, k), p)| (cell, self.update(0, 0, k, p.p, false, 0).key, *p))
                .collect()
        };
        Saved {
            rows,
            buffer: cells(&self.buffer),
            removals: cells(&self.removals),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for WindowState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let saved = Saved::deserialize(d)?;
        let mut w = WindowState::default();
        for (key, partial, dirty, ops) in saved.rows {
            let k = w.segments.intern(key.grouping, &key.dims);
            let size = key.size_ms;
            w.size_mut(size).entry(key.end_ms).or_default().insert(
                k,
                Slot {
                    partial,
                    dirty,
                    ops,
                },
            );
            w.open_rows += 1;
            if dirty {
                w.dirty.push((size, key.end_ms, k));
            }
        }
        for (cell, key, p) in saved.buffer {
            let k = w.segments.intern(key.grouping, &key.dims);
            let e = w.buffer.entry((cell, k)).or_default();
            e.p.merge(&p.p);
            e.ops = e.ops.saturating_add(p.ops);
        }
        for (cell, key, p) in saved.removals {
            let k = w.segments.intern(key.grouping, &key.dims);
            let e = w.removals.entry((cell, k)).or_default();
            e.p.merge(&p.p);
            e.ops = e.ops.saturating_add(p.ops);
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Found by the checkpoint fuzz target: a corrupt checkpoint naming one cell twice with
    /// operation counts that overflow when added is read without a panic.
    #[test]
    fn a_corrupt_cell_count_saturates_instead_of_overflowing() {
        let key = WindowKey {
            end_ms: 60_000,
            size_ms: 60_000,
            grouping: 0,
            dims: Arc::new(std::array::from_fn(|_| Arc::from(""))),
        };
        let pend = Pend {
            p: Partial::default(),
            ops: u64::MAX,
        };
        let saved = Saved {
            rows: Vec::new(),
            buffer: vec![(0, key.clone(), pend), (0, key.clone(), pend)],
            removals: vec![(0, key.clone(), pend), (0, key, pend)],
        };
        let bytes = postcard::to_allocvec(&saved).unwrap_or_else(|e| panic!("{e}"));
        let w: WindowState = postcard::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.buffer.values().map(|p| p.ops).max(), Some(u64::MAX));
    }
}
