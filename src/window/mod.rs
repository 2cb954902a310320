//! Event-time tumbling windows over configured grouping sets, for one partition pair.
//!
//! Every accepted event is folded into one window per configured size and one row per
//! grouping set. Windows are emitted while open (so boards show the current hour) and once
//! more, marked final, when the partition's horizon passes their end. The row version grows
//! with every event folded, so the newest state always wins in ReplacingMergeTree.

pub mod aggregate;

use crate::model::{DimValues, DIMENSIONS};
use aggregate::Partial;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A grouping set: which of the [`DIMENSIONS`] a row is keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// Stored in the `grouping` column: dimension names joined by ',' ('' = overall).
    pub name: String,
    pub mask: u8,
}

impl Grouping {
    /// Builds a grouping from dimension names; unknown names are a config error.
    pub fn new(dims: &[String]) -> Result<Self, String> {
        let mut mask = 0u8;
        for d in dims {
            let i = DIMENSIONS.iter().position(|x| x == d).ok_or_else(|| {
                format!("unknown dimension {d:?} (known: {})", DIMENSIONS.join(", "))
            })?;
            mask |= 1 << i;
        }
        let name = DIMENSIONS
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, d)| *d)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Grouping { name, mask })
    }
}

#[derive(Clone, Debug)]
pub struct WindowConfig {
    pub sizes_ms: Vec<i64>,
    pub groupings: Vec<Grouping>,
}

/// Ordered by end first so closing is a range scan from the front.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    pub end_ms: i64,
    pub size_ms: i64,
    pub grouping: u8,
    /// Values of the grouped dimensions; ungrouped ones hold "".
    pub dims: DimValues,
}

impl WindowKey {
    pub fn start_ms(&self) -> i64 {
        self.end_ms - self.size_ms
    }
}

/// One emitted window state.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowUpdate {
    pub key: WindowKey,
    pub partial: Partial,
    pub is_final: bool,
}

impl WindowUpdate {
    /// Grows with every event folded; a final emission beats the open one of equal count.
    pub fn version(&self) -> u64 {
        self.partial.events() * 2 + u64::from(self.is_final)
    }
}

#[derive(Default, Serialize, Deserialize)]
pub struct WindowState {
    open: BTreeMap<WindowKey, Partial>,
    dirty: BTreeSet<WindowKey>,
}

/// Start of the tumbling window of `size` that holds `t` (floor division, so negative
/// times land in the right window too).
pub fn window_start(t: i64, size: i64) -> i64 {
    t.div_euclid(size) * size
}

impl WindowState {
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// Folds one event at time `t` into every size x grouping.
    pub fn add(
        &mut self,
        t: i64,
        dims: &DimValues,
        empty: &Arc<str>,
        cfg: &WindowConfig,
        fold: impl Fn(&mut Partial),
    ) {
        for &size in &cfg.sizes_ms {
            let end = window_start(t, size) + size;
            for (gi, g) in cfg.groupings.iter().enumerate() {
                let key = WindowKey {
                    end_ms: end,
                    size_ms: size,
                    grouping: gi as u8,
                    dims: std::array::from_fn(|i| {
                        if g.mask & (1 << i) != 0 {
                            dims[i].clone()
                        } else {
                            empty.clone()
                        }
                    }),
                };
                fold(self.open.entry(key.clone()).or_default());
                self.dirty.insert(key);
            }
        }
    }

    /// Emits every window changed since the last call.
    pub fn drain_dirty(&mut self, out: &mut Vec<WindowUpdate>) {
        for key in std::mem::take(&mut self.dirty) {
            if let Some(p) = self.open.get(&key) {
                out.push(WindowUpdate {
                    key,
                    partial: *p,
                    is_final: false,
                });
            }
        }
    }

    /// Emits as final and forgets every window ending at or before `floor`.
    pub fn close_until(&mut self, floor: i64, out: &mut Vec<WindowUpdate>) {
        while let Some(entry) = self.open.first_entry() {
            if entry.key().end_ms > floor {
                break;
            }
            let (key, partial) = entry.remove_entry();
            self.dirty.remove(&key);
            out.push(WindowUpdate {
                key,
                partial,
                is_final: true,
            });
        }
    }

    /// Everything still open, for summaries.
    pub fn iter(&self) -> impl Iterator<Item = (&WindowKey, &Partial)> {
        self.open.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WindowConfig {
        WindowConfig {
            sizes_ms: vec![60_000, 3_600_000],
            groupings: vec![
                Grouping::new(&[]).unwrap_or_else(|e| panic!("{e}")),
                Grouping::new(&["team".into()]).unwrap_or_else(|e| panic!("{e}")),
            ],
        }
    }

    fn dims(team: &str) -> DimValues {
        std::array::from_fn(|i| Arc::from(if i == 2 { team } else { "x" }))
    }

    #[test]
    fn windows_are_floor_aligned() {
        assert_eq!(window_start(119_999, 60_000), 60_000);
        assert_eq!(window_start(120_000, 60_000), 120_000);
        assert_eq!(window_start(-1, 60_000), -60_000);
    }

    #[test]
    fn grouping_names_follow_column_order() {
        let g =
            Grouping::new(&["bucket".into(), "channel".into()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.name, "channel,bucket");
        assert!(Grouping::new(&["colour".into()]).is_err());
    }

    #[test]
    fn one_event_touches_sizes_times_groupings_and_closes_in_end_order() {
        let c = cfg();
        let empty: Arc<str> = Arc::from("");
        let mut w = WindowState::default();
        w.add(30_000, &dims("a"), &empty, &c, |p| p.add_contact(1, 2, 3));
        w.add(90_000, &dims("b"), &empty, &c, |p| p.add_contact(1, 0, 0));
        assert_eq!(w.open_len(), 2 * 2 + 2 + 1); // 1m: 2 windows x 2 rows; 1h: overall + 2 teams
        let mut out = Vec::new();
        w.drain_dirty(&mut out);
        assert_eq!(out.len(), 7);
        out.clear();
        w.drain_dirty(&mut out);
        assert!(out.is_empty(), "nothing changed since the last drain");
        w.close_until(60_000, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|u| u.is_final && u.key.end_ms == 60_000));
        let overall = out.iter().find(|u| u.key.grouping == 0).map(|u| u.partial);
        assert_eq!(overall.map(|p| (p.contacts, p.handle_ms)), Some((1, 6)));
        assert_eq!(out[0].version(), 3);
    }
}
