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
            e.ops += p.ops;
        }
        for (cell, key, p) in saved.removals {
            let k = w.segments.intern(key.grouping, &key.dims);
            let e = w.removals.entry((cell, k)).or_default();
            e.p.merge(&p.p);
            e.ops += p.ops;
        }
        Ok(w)
    }
}
