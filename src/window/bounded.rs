//! Memory bounds of the window state: a cap on open rows (past it the oldest windows close
//! early, docs/SEMANTICS.md "State is bounded") and compaction of the interned segment
//! strings, so strings of closed rows do not stay behind. Both act on ids only this process
//! knows, never on what a checkpoint holds (rows are saved by their full keys).

use super::segments::Segments;
use super::{Ends, WindowConfig, WindowState};
use rustc_hash::FxHashMap;

/// Rough bytes of one open row (hash-map slot with its key, partial state and flags).
const ROW_BYTES: usize = 96;
/// Rough bytes of one buffered cell change.
const CELL_BYTES: usize = 120;

impl WindowState {
    /// The end of the windows to close early when more than `cap` rows are open: the
    /// smallest end such that closing every window ending at or before it leaves at most
    /// three quarters of `cap` open (so the next batches do not close early again at
    /// once). None while under the cap.
    pub fn early_close_end(&mut self, cap: usize, cfg: &WindowConfig) -> Option<i64> {
        if self.open_len() <= cap {
            return None;
        }
        self.roll_up(cfg);
        let keep = cap - cap / 4;
        let mut per_end: Vec<(i64, usize)> = self
            .open
            .iter()
            .flat_map(|(_, ends)| ends.iter().map(|(&e, rows)| (e, rows.len())))
            .collect();
        per_end.sort_unstable();
        let mut open = self.open_rows;
        for (end, n) in per_end {
            open = open.saturating_sub(n);
            if open <= keep {
                return Some(end);
            }
        }
        // Unreachable while rows exist: closing every end leaves none open.
        None
    }

    /// Rows of windows and buffered cells, in bytes (an estimate for the `cx_state_bytes`
    /// gauge, to watch the cap from outside).
    pub fn row_bytes(&self) -> usize {
        let cells = self.buffer.len().saturating_add(self.removals.len());
        self.open_rows
            .saturating_mul(ROW_BYTES)
            .saturating_add(cells.saturating_mul(CELL_BYTES))
    }

    /// Interned segment strings and their tables, in bytes (an estimate).
    pub fn segment_bytes(&self) -> usize {
        self.segments.bytes()
    }

    /// Re-interns the segments of the rows still held once most interned keys belong to
    /// closed rows, so the strings of a closed high-cardinality hour are freed. Amortised:
    /// runs only when the interned keys are more than twice the live ones.
    pub(super) fn compact_segments(&mut self) {
        let live = self
            .open_rows
            .saturating_add(self.buffer.len())
            .saturating_add(self.removals.len());
        if self.segments.key_count() <= live.saturating_mul(2).saturating_add(4096) {
            return;
        }
        let old = std::mem::take(&mut self.segments);
        let mut ids: FxHashMap<u32, u32> = FxHashMap::default();
        let segments = &mut self.segments;
        let mut remap = |k: u32| {
            *ids.entry(k).or_insert_with(|| {
                let (grouping, dims) = old.resolve(k);
                segments.intern(grouping, &dims)
            })
        };
        for (_, ends) in &mut self.open {
            let taken: Ends = std::mem::take(ends);
            for (end, rows) in taken {
                let rows = rows.into_iter().map(|(k, slot)| (remap(k), slot)).collect();
                ends.insert(end, rows);
            }
        }
        for cells in [&mut self.buffer, &mut self.removals] {
            *cells = std::mem::take(cells)
                .into_iter()
                .map(|((cell, k), p)| ((cell, remap(k)), p))
                .collect();
        }
        for d in &mut self.dirty {
            d.2 = remap(d.2);
        }
    }
}

impl Segments {
    /// Interned strings plus the tables that index them, in bytes (an estimate).
    pub fn bytes(&self) -> usize {
        self.string_bytes()
            .saturating_add(self.value_count().saturating_mul(56))
            .saturating_add(self.key_count().saturating_mul(160))
            .saturating_add(self.tuple_count().saturating_mul(96))
    }
}
