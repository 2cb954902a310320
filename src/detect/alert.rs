//! What the detector says: alert events (fired, resolved) and digest entries. Ids only, never
//! comment text: an alert names detractor `response_id`s, the comments stay in ClickHouse.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// A child segment's share of the drop, in NPS points of the alerting segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contributor {
    pub segment: String,
    pub points: f64,
    pub n: u64,
}

/// A contact category more common among the detractors than among all answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryShare {
    pub category: String,
    /// Share of the period's detractors whose contact had this category.
    pub among_detractors: f64,
    /// Share of all the period's answers.
    pub among_all: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEvent {
    /// Stable across restarts: segment and the hour the alert fired.
    pub alert_id: String,
    pub state: AlertState,
    pub grouping: String,
    /// `overall`, `team=billing`, ...
    pub segment: String,
    pub dims: BTreeMap<String, String>,
    /// End of the hour this event was decided on (Unix seconds).
    pub at: i64,
    pub fired_at: i64,
    /// Estimated start of the drop: where the CUSUM's excursion began.
    pub change_start: i64,
    /// NPS since the change start, its adjusted-Wald 95 % interval and answer count.
    pub nps: f64,
    pub nps_low: f64,
    pub nps_high: f64,
    pub n: u64,
    /// Baseline NPS over the same hours (season included) and its 95 % interval.
    pub baseline_nps: f64,
    pub baseline_low: f64,
    pub baseline_high: f64,
    /// Answers in the baseline window.
    pub baseline_n: u64,
    /// nps − baseline_nps, in points.
    pub effect: f64,
    /// Drop size of the CUSUM that fired, in points.
    pub delta: f64,
    pub statistic: f64,
    pub threshold: f64,
    pub contributors: Vec<Contributor>,
    pub detractor_categories: Vec<CategoryShare>,
    pub detractor_response_ids: Vec<String>,
}

impl AlertEvent {
    pub fn summary(&self) -> String {
        format!(
            "NPS {} {:.1} (95% {:.1}..{:.1}, n={}) vs baseline {:.1}: {:+.1} points since {}",
            self.segment,
            self.nps,
            self.nps_low,
            self.nps_high,
            self.n,
            self.baseline_nps,
            self.effect,
            crate::detect::rfc3339(self.change_start)
        )
    }
}

/// One segment the daily digest flags: a drop over the last day or week that survives
/// Benjamini–Hochberg across all segments, whether or not it paged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DigestEntry {
    /// Start of the day the digest was made for (Unix seconds).
    pub day: i64,
    pub period_days: u32,
    pub grouping: String,
    pub segment: String,
    pub nps: f64,
    pub nps_low: f64,
    pub nps_high: f64,
    pub n: u64,
    pub expected_nps: f64,
    pub p_value: f64,
    pub paging: bool,
}
