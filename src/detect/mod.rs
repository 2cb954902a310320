//! The NPS-drop detector (docs/ALERTS.md): every segment of every
//! grouping set, every hour, against its own seasonal, shrunk, over-dispersion-aware baseline,
//! with CUSUM thresholds set from one weekly false-page budget for all segments together.
//!
//! # Layout
//! - `segment`: segment keys and the parent rule.
//! - `baseline`: hourly history and the daily baseline fit.
//! - `cusum`: the test and its thresholds.
//! - `detector`: the hourly state machine (pure; no clock, no I/O).
//! - `alert`: what it emits.
//! - `incident`: which alerts are one incident, and who hears of it.
//!
//! The statistics it shares with the boards are in [`crate::stats`]; the service that reads
//! ClickHouse and delivers alerts is `app::detect`, the simulation harness `app::simulate`.

pub mod alert;
pub mod baseline;
pub mod cusum;
pub mod detector;
pub mod incident;
pub mod segment;

#[cfg(test)]
mod follow_tests;
#[cfg(test)]
mod tests;

pub use crate::stats::Counts;
pub use alert::{AlertEvent, AlertState, DigestEntry, Severity};
pub use detector::{Detector, Output};
pub use segment::{Hierarchy, SegmentKey};

/// The detector's knobs (config section `[detector]`; docs/ALERTS.md explains each).
#[derive(Clone, Debug)]
pub struct Params {
    /// Expected false pages per week across all segments together.
    pub budget_per_week: f64,
    /// Length of the baseline window.
    pub baseline_days: u32,
    /// Days between the baseline window's end and now, so a drop does not leak into it.
    pub gap_days: u32,
    /// Days of history before a segment is watched.
    pub min_history_days: u32,
    /// Smallest drop worth a page, in NPS points, per grouping (by mask); others use
    /// [`Params::default_delta`].
    pub deltas: Vec<(u8, f64)>,
    /// The CUSUM bank doubles δ up to this many points.
    pub max_delta: f64,
    /// The null hypothesis sits this many standard errors of the baseline below it, so an
    /// over-estimated baseline does not turn into a stream of pages.
    pub baseline_margin_se: f64,
    /// Evidence of recovery needed to resolve, as a share of the evidence that fires the
    /// grouping's own-δ CUSUM (hysteresis: a persisting drop must not resolve by chance).
    pub resolve_share: f64,
    /// Hours an alert stays active at least.
    pub min_active_hours: u32,
    /// False-discovery rate of the digest.
    pub digest_fdr: f64,
    /// Normal quantile of the reported intervals (1.96: 95 %).
    pub z: f64,
    /// Share of the budget for segments of nested groupings (agents): hundreds of small
    /// series that rarely show anything at δ must not set everyone else's thresholds.
    pub nested_budget_share: f64,
    /// Groupings (by mask) that page at δ; None: every grouping without team, agent or tier
    /// (overall, region, product, channel, bucket and their combinations).
    pub page_masks: Option<Vec<u8>>,
    /// An alert open this long is a new level: it resolves as `new_baseline` and the
    /// segment's baseline restarts from the drop's start.
    pub accept_after_days: u32,
    /// A paging alert open this long becomes a ticket (severity `ticket`).
    pub max_page_age_hours: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            budget_per_week: 1.0,
            baseline_days: 28,
            gap_days: 1,
            min_history_days: 7,
            deltas: Vec::new(),
            max_delta: 40.0,
            baseline_margin_se: 0.75,
            resolve_share: 0.5,
            min_active_hours: 2,
            digest_fdr: 0.1,
            z: 1.96,
            nested_budget_share: 0.1,
            page_masks: None,
            accept_after_days: 14,
            max_page_age_hours: 72,
        }
    }
}

impl Params {
    /// δ of a grouping when the config names none: 5 points overall and per region (large,
    /// slow-moving segments where 5 points matters), 20 for anything split by agent (small
    /// and noisy), 10 otherwise (team, product, channel, tier).
    pub fn default_delta(mask: u8) -> f64 {
        let region = segment::grouping_mask("region").unwrap_or(0);
        let agent = segment::grouping_mask("agent").unwrap_or(0);
        if mask & agent != 0 {
            20.0
        } else if mask == 0 || mask == region {
            5.0
        } else {
            10.0
        }
    }

    /// Whether a grouping's alerts page at δ (the rest page from 2δ).
    pub fn pages_at_delta(&self, mask: u8) -> bool {
        match &self.page_masks {
            Some(m) => m.contains(&mask),
            None => ["team", "agent", "tier"]
                .iter()
                .filter_map(|d| segment::grouping_mask(d))
                .all(|d| mask & d == 0),
        }
    }

    pub fn delta(&self, mask: u8) -> f64 {
        self.deltas
            .iter()
            .find(|(m, _)| *m == mask)
            .map_or_else(|| Self::default_delta(mask), |(_, d)| *d)
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}
