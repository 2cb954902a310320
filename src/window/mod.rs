//! Event-time tumbling windows over configured grouping sets, for one partition pair.
//!
//! Every on-time event is folded into one window per configured size and one row per
//! grouping set. Windows are emitted while open (so boards show the current hour) and once
//! more, marked final, when the partition's clocks pass their end. The caller supplies the
//! row version (it grows with the input offsets), so the newest state wins in
//! ReplacingMergeTree even when a revision takes a survey out of a row.
//!
//! Late events (behind their stream's floor, within the late horizon) never touch these
//! rows: each one is written as its own *correction* rows, keyed by the event's source
//! offset, so they are idempotent under replay and need no memory once written.

pub mod aggregate;
mod bounded;
mod saved;
pub mod segments;

use crate::model::{DimValues, UnknownDimension, DIMENSIONS};
use aggregate::Partial;
use rustc_hash::FxHashMap;
use segments::Segments;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A grouping set: which of the [`DIMENSIONS`] a row is keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// Stored in the `grouping` column: dimension names joined by ',' ('' = overall).
    pub name: String,
    pub mask: u8,
}

impl Grouping {
    /// Builds a grouping from dimension names; unknown names are a config error.
    pub fn new(dims: &[String]) -> Result<Self, UnknownDimension> {
        let mut mask = 0u8;
        for d in dims {
            let i = DIMENSIONS
                .iter()
                .position(|x| x == d)
                .ok_or_else(|| UnknownDimension::Dimension(d.clone()))?;
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
    sizes_ms: Vec<i64>,
    pub groupings: Vec<Grouping>,
    /// gcd of the sizes, computed once: every event needs it.
    cell_ms: i64,
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
    /// Larger wins in ReplacingMergeTree.
    pub version: u64,
    /// 0 for the window's own row; otherwise the id of the late event this correction
    /// row holds (see [`correction_id`]).
    pub revision: u64,
    /// -1 on a row that takes a revised survey out of a segment (readers sum `sign * x`).
    pub sign: i8,
}

/// The correction-row id of a late event: unique per source record, the same on replay.
pub fn correction_id(stream: crate::model::Stream, offset: i64) -> u64 {
    (u64::try_from(offset).unwrap_or(0) << 1 | stream as u64).saturating_add(1)
}

/// One open row: its state, the operations applied to it, and whether it changed since it
/// was last emitted.
#[derive(Clone, Copy, Default)]
struct Slot {
    partial: Partial,
    dirty: bool,
    ops: u64,
}

/// Changes to one (cell, row) since the last roll-up, and how many operations made them.
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
struct Pend {
    p: Partial,
    ops: u64,
}

impl Pend {
    fn apply(&mut self, p: &Partial) {
        self.p.merge(p);
        self.ops += 1;
    }
}

/// Open windows of one size, by end time, then group key.
type Ends = BTreeMap<i64, FxHashMap<u32, Slot>>;

/// Per event, the work is one tuple lookup plus one small-key update per grouping set in a
/// buffer at the finest time granularity (the gcd of the sizes, so each buffer cell lies in
/// exactly one window of every size). The buffer is rolled up into every size when windows
/// are emitted or closed: once per cell, not once per event.
#[derive(Default)]
pub struct WindowState {
    segments: Segments,
    /// (start of the gcd-sized cell, group key) -> events since the last roll-up.
    buffer: FxHashMap<(i64, u32), Pend>,
    /// Revisions since the last roll-up: what to take out of rows (applied after `buffer`).
    removals: FxHashMap<(i64, u32), Pend>,
    /// Per window size (ms), its open windows.
    open: Vec<(i64, Ends)>,
    dirty: Vec<(i64, i64, u32)>,
    open_rows: usize,
}

/// Start of the tumbling window of `size` that holds `t` (floor division, so negative
/// times land in the right window too).
pub fn window_start(t: i64, size: i64) -> i64 {
    t.div_euclid(size) * size
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

impl WindowConfig {
    pub fn new(sizes_ms: Vec<i64>, groupings: Vec<Grouping>) -> Self {
        let cell_ms = sizes_ms.iter().fold(0, |g, &s| gcd(g, s)).max(1);
        WindowConfig {
            sizes_ms,
            groupings,
            cell_ms,
        }
    }

    pub fn sizes_ms(&self) -> &[i64] {
        &self.sizes_ms
    }

    /// The buffer's cell size: every configured size is a multiple of it.
    pub fn cell_ms(&self) -> i64 {
        self.cell_ms
    }
}

impl WindowState {
    /// Rows held open (after the pending roll-up).
    pub fn open_len(&self) -> usize {
        self.open_rows + self.buffer.len()
    }

    /// Distinct group keys seen, a measure of segment cardinality.
    pub fn group_keys(&self) -> usize {
        self.segments.key_count()
    }

    /// Folds one event at time `t` into every size x grouping.
    pub fn add(
        &mut self,
        t: i64,
        dims: &[&str; DIMENSIONS.len()],
        cfg: &WindowConfig,
        fold: impl Fn(&mut Partial),
    ) {
        let cell = window_start(t, cfg.cell_ms());
        for &k in self.segments.keys_for(dims, &cfg.groupings) {
            let e = self.buffer.entry((cell, k)).or_default();
            fold(&mut e.p);
            e.ops += 1;
        }
    }

    /// Replaces an earlier `add` of `was` under `from` by `now` under `to` (a survey
    /// settled). Groupings whose key is the same in both (overall, region) only get the
    /// difference, which must be non-negative (`now` >= `was` field by field). Only for
    /// events whose windows are still open, which pending surveys guarantee by holding
    /// closing back.
    pub fn move_event(
        &mut self,
        t: i64,
        (from, was): (&[&str; DIMENSIONS.len()], &Partial),
        (to, now): (&[&str; DIMENSIONS.len()], &Partial),
        cfg: &WindowConfig,
    ) {
        let mut delta = *now;
        delta.subtract(was);
        let cell = window_start(t, cfg.cell_ms());
        let mut old = [0u32; 32];
        for (o, &k) in old
            .iter_mut()
            .zip(self.segments.keys_for(from, &cfg.groupings))
        {
            *o = k;
        }
        let new = self.segments.keys_for(to, &cfg.groupings);
        for (&o, &n) in old.iter().zip(new) {
            if o != n {
                self.removals.entry((cell, o)).or_default().apply(was);
                self.buffer.entry((cell, n)).or_default().apply(now);
            } else {
                self.buffer.entry((cell, n)).or_default().apply(&delta);
            }
        }
    }

    /// Correction rows for one late event: its own contribution, in every size x grouping,
    /// final at once (nothing else is ever folded into them).
    pub fn corrections(
        &mut self,
        t: i64,
        dims: &[&str; DIMENSIONS.len()],
        cfg: &WindowConfig,
        revision: u64,
        p: &Partial,
        mut emit: impl FnMut(WindowUpdate),
    ) {
        let keys = self.segments.keys_for(dims, &cfg.groupings).to_vec();
        for &size in &cfg.sizes_ms {
            let end = window_start(t, size).saturating_add(size);
            for &k in &keys {
                let mut u = self.update(size, end, k, *p, true, 1);
                u.revision = revision;
                emit(u);
            }
        }
    }

    /// Rewrites one survey's own correction rows (`revision`) at `version`: the sum of
    /// `parts` per segment, each part added or (`true`) taken out; a segment the parts
    /// name with nothing left in it is written as zeros, so what an earlier version put
    /// there is gone. Every row is single-signed (a survey's parts differ only in whether
    /// it is attributed), written with `sign = -1` when it takes out.
    #[allow(clippy::too_many_arguments)]
    pub fn rewrite(
        &mut self,
        t: i64,
        parts: &[(&[&str; DIMENSIONS.len()], Partial, bool)],
        cfg: &WindowConfig,
        revision: u64,
        version: u64,
        mut emit: impl FnMut(WindowUpdate),
    ) {
        let mut by_key: BTreeMap<u32, (Partial, Partial)> = BTreeMap::new();
        for (dims, p, out) in parts {
            for &k in self.segments.keys_for(dims, &cfg.groupings) {
                let e = by_key.entry(k).or_default();
                if *out {
                    e.1.merge(p);
                } else {
                    e.0.merge(p);
                }
            }
        }
        for &size in &cfg.sizes_ms {
            let end = window_start(t, size).saturating_add(size);
            for (&k, (add, take)) in &by_key {
                let (p, sign) = match add.checked_sub(take) {
                    Some(p) => (p, 1),
                    None => (take.checked_sub(add).unwrap_or_default(), -1),
                };
                let mut u = self.update(size, end, k, p, true, version);
                u.revision = revision;
                u.sign = sign;
                emit(u);
            }
        }
    }

    fn size_mut(&mut self, size: i64) -> &mut Ends {
        let i = match self.open.iter().position(|(s, _)| *s == size) {
            Some(i) => i,
            None => {
                self.open.push((size, Ends::new()));
                self.open.len() - 1
            }
        };
        &mut self.open[i].1
    }

    /// Moves the buffer into the open windows of every size.
    fn roll_up(&mut self, cfg: &WindowConfig) {
        if self.buffer.is_empty() && self.removals.is_empty() {
            return;
        }
        let buffer = std::mem::take(&mut self.buffer);
        let removals = std::mem::take(&mut self.removals);
        for (changes, take_out) in [(&buffer, false), (&removals, true)] {
            for &size in &cfg.sizes_ms {
                let mut new_rows = 0;
                let mut dirty = Vec::new();
                let ends = self.size_mut(size);
                for (&(cell, key), p) in changes {
                    let end = window_start(cell, size).saturating_add(size);
                    let slot = ends.entry(end).or_default().entry(key).or_insert_with(|| {
                        new_rows += 1;
                        Slot::default()
                    });
                    if take_out {
                        slot.partial.subtract(&p.p);
                    } else {
                        slot.partial.merge(&p.p);
                    }
                    slot.ops = slot.ops.saturating_add(p.ops);
                    if !slot.dirty {
                        slot.dirty = true;
                        dirty.push((size, end, key));
                    }
                }
                self.open_rows += new_rows;
                self.dirty.extend(dirty);
            }
        }
        // Reuse the allocation for the next batch.
        let mut buffer = buffer;
        buffer.clear();
        self.buffer = buffer;
    }

    fn update(
        &self,
        size: i64,
        end: i64,
        key: u32,
        partial: Partial,
        is_final: bool,
        version: u64,
    ) -> WindowUpdate {
        let (grouping, dims) = self.segments.resolve(key);
        WindowUpdate {
            key: WindowKey {
                end_ms: end,
                size_ms: size,
                grouping,
                dims,
            },
            partial,
            is_final,
            version,
            revision: 0,
            sign: 1,
        }
    }

    /// Emits every window changed since the last call.
    pub fn drain_dirty(&mut self, cfg: &WindowConfig, mut emit: impl FnMut(WindowUpdate)) {
        self.roll_up(cfg);
        for (size, end, key) in std::mem::take(&mut self.dirty) {
            let slot = self
                .open
                .iter_mut()
                .find(|(s, _)| *s == size)
                .and_then(|(_, ends)| ends.get_mut(&end))
                .and_then(|rows| rows.get_mut(&key));
            if let Some(slot) = slot {
                slot.dirty = false;
                let (p, version) = (slot.partial, slot.ops.saturating_mul(2));
                emit(self.update(size, end, key, p, false, version));
            }
        }
    }

    /// Emits as final and forgets every window ending at or before `floor`; a final
    /// emission beats the open one with the same operations.
    pub fn close_until(
        &mut self,
        floor: i64,
        cfg: &WindowConfig,
        mut emit: impl FnMut(WindowUpdate),
    ) {
        self.roll_up(cfg);
        let mut closed = Vec::new();
        for (size, ends) in &mut self.open {
            while let Some(e) = ends.first_entry() {
                if *e.key() > floor {
                    break;
                }
                let (end, rows) = e.remove_entry();
                closed.extend(rows.into_iter().map(|(k, slot)| {
                    let version = slot.ops.saturating_mul(2).saturating_add(1);
                    (*size, end, k, slot.partial, version)
                }));
            }
        }
        // Stable output order: by end, size, then group key.
        closed.sort_unstable_by_key(|&(size, end, k, _, _)| (end, size, k));
        self.open_rows -= closed.len();
        for (size, end, key, p, version) in closed {
            emit(self.update(size, end, key, p, true, version));
        }
        self.compact_segments();
    }

    /// Every open row, for summaries and checkpoints (rolls the buffer up first).
    pub fn snapshot(&mut self, cfg: &WindowConfig) -> Vec<(WindowKey, Partial)> {
        self.roll_up(cfg);
        let mut v = Vec::with_capacity(self.open_rows);
        for (size, ends) in &self.open {
            for (&end, rows) in ends {
                for (&k, slot) in rows {
                    let u = self.update(*size, end, k, slot.partial, false, 0);
                    v.push((u.key, u.partial));
                }
            }
        }
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests;
