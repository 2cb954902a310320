//! What the detector says: alert events (fired, resolved) and digest entries. Ids only, never
//! comment text: an alert names detractor `response_id`s, the comments stay in ClickHouse.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    /// An open alert changed in place: its drop deepened, it escalated, or it aged into a
    /// ticket (`reason` says which).
    Updated,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Updated => "updated",
            AlertState::Resolved => "resolved",
        }
    }
}

/// Who hears of an alert (docs/ALERTS.md, *Routing*): `ticket` goes to the business-hours
/// receiver, `page` and `critical` to on-call. The one rule is [`Severity::of`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Ticket,
    Page,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ticket => "ticket",
            Severity::Page => "page",
            Severity::Critical => "critical",
        }
    }

    /// A segment of a paging grouping pages at δ, any other files a ticket; a drop of 2δ or
    /// more is one step up (ticket → page, page → critical); an alert older than the
    /// maximum page age is a ticket whatever its size (the digest of a known, lasting drop,
    /// not a page every day).
    pub fn of(pages_at_delta: bool, drop_points: f64, delta_points: f64, aged: bool) -> Severity {
        if aged {
            return Severity::Ticket;
        }
        let big = drop_points >= 2.0 * delta_points - 1e-9;
        match (pages_at_delta, big) {
            (false, false) => Severity::Ticket,
            (true, false) | (false, true) => Severity::Page,
            (true, true) => Severity::Critical,
        }
    }

    pub fn pages(self) -> bool {
        self >= Severity::Page
    }

    /// The receiver class: `page` for on-call (page and critical alike), `ticket` for the
    /// business-hours receiver. Alertmanager's `severity` label carries this, so a page
    /// turning critical updates the alert in place instead of paging again.
    pub fn route(self) -> &'static str {
        if self.pages() {
            "page"
        } else {
            "ticket"
        }
    }
}

/// How the drop since the change start splits over the segment's parts (Kitagawa): `mix`
/// is what the change in the parts' shares alone would have moved, `within` what the parts'
/// own NPS changes moved, both in NPS points of the segment; `by` names the parts'
/// grouping. A drop that is mostly `mix` is the customers who answered changing, not the
/// same customers being less happy.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MixSplit {
    pub by: String,
    pub mix: f64,
    pub within: f64,
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
    /// The incident this alert belongs to: its own id when it opened it, else the id of the
    /// alert whose incident explains it (docs/ALERTS.md, *Incidents*).
    pub incident_id: String,
    pub severity: Severity,
    /// Why an `updated` or `resolved` event happened: `deepened`, `escalated`, `aged`,
    /// `recovered`, `new_baseline`; empty on `firing`.
    pub reason: String,
    /// True when this event is a notification: it opened an incident or sent it to a
    /// receiver it had not reached (a ticket that became a page). Everything else updates
    /// an incident in place.
    pub notify: bool,
    /// Current estimate of the drop below the baseline, points (grows as it deepens).
    pub drop: f64,
    /// Over-dispersion factor in the thresholds and in every interval shown (>= 1).
    pub phi: f64,
    pub mix_split: Option<MixSplit>,
    /// Answers since the change start over what the baseline's volume profile expects.
    pub volume_ratio: f64,
    /// Reasons to suspect the data rather than the customers: `volume_low`,
    /// `volume_high`, `partitions_lagging`, `unattributed_up`.
    pub data_flags: Vec<String>,
    /// Recorded in shadow mode (`detector.mode = "shadow"`): never delivered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

impl AlertEvent {
    /// The segment the event is about, from its grouping and dimension values.
    pub fn key(&self) -> Option<crate::detect::SegmentKey> {
        let dims = crate::model::DIMENSIONS;
        let values: [String; crate::model::DIMENSIONS.len()] =
            std::array::from_fn(|i| self.dims.get(dims[i]).cloned().unwrap_or_default());
        crate::detect::SegmentKey::from_row(&self.grouping, values)
    }

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
