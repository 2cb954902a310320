//! The `[join]` and `[window]` sections: attribution, windows, lateness and grouping sets.

use super::{duration, millis};
use crate::join::{AttributionPolicy, JoinConfig};
use crate::window::{Grouping, WindowConfig};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinSection {
    pub attribution: AttributionPolicy,
    pub lookback: String,
    pub max_wait: String,
    pub max_contacts_per_partition: usize,
    pub max_pending_per_partition: usize,
    /// How far behind the contact stream a late contact may still revise a settled
    /// survey ("" = the late horizon).
    pub revise_horizon: String,
    pub max_revisable_per_partition: usize,
    pub max_revisions_per_survey: u32,
}

impl Default for JoinSection {
    fn default() -> Self {
        JoinSection {
            attribution: AttributionPolicy::Last,
            lookback: "7d".into(),
            max_wait: "10m".into(),
            max_contacts_per_partition: 2_000_000,
            max_pending_per_partition: 500_000,
            revise_horizon: String::new(),
            max_revisable_per_partition: 1_000_000,
            max_revisions_per_survey: 16,
        }
    }
}

impl JoinSection {
    pub(super) fn validate(&self, w: &Windows, errs: &mut Vec<String>) -> JoinConfig {
        let lookback = duration("join.lookback", &self.lookback, errs);
        let floor_lag_ms = w.out_of_orderness_ms.saturating_add(w.allowed_lateness_ms);
        let revise_ms = if self.revise_horizon.is_empty() {
            w.late_horizon_ms
        } else {
            millis(duration("join.revise_horizon", &self.revise_horizon, errs))
        };
        if revise_ms < floor_lag_ms || revise_ms > w.late_horizon_ms {
            errs.push(format!(
                "join.revise_horizon = {:?} must lie between out_of_orderness + allowed_lateness and window.late_horizon",
                self.revise_horizon
            ));
        }
        if self.max_revisable_per_partition == 0 {
            errs.push("join.max_revisable_per_partition must be > 0".into());
        }
        let max_wait = duration("join.max_wait", &self.max_wait, errs);
        if self.max_contacts_per_partition == 0 {
            errs.push("join.max_contacts_per_partition must be > 0".into());
        }
        if self.max_pending_per_partition == 0 {
            errs.push("join.max_pending_per_partition must be > 0".into());
        }
        JoinConfig {
            policy: self.attribution,
            lookback_ms: millis(lookback),
            max_wait_ms: millis(max_wait),
            max_contacts: self.max_contacts_per_partition,
            max_pending: self.max_pending_per_partition,
            revise_ms,
            floor_lag_ms,
            max_revisable: self.max_revisable_per_partition,
            max_revisions: self.max_revisions_per_survey,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    pub sizes: Vec<String>,
    pub out_of_orderness: String,
    pub allowed_lateness: String,
    /// How far behind its stream an event may be and still revise its windows.
    pub late_horizon: String,
    pub grouping_sets: Vec<Vec<String>>,
}

impl Default for WindowSection {
    fn default() -> Self {
        WindowSection {
            sizes: vec!["1m".into(), "1h".into(), "1d".into()],
            out_of_orderness: "30s".into(),
            allowed_lateness: "5m".into(),
            late_horizon: "7d".into(),
            grouping_sets: vec![
                vec![],
                vec!["region".into()],
                vec!["team".into()],
                vec!["channel".into(), "bucket".into()],
                vec!["agent".into()],
                vec!["product".into()],
                vec!["tier".into()],
            ],
        }
    }
}

/// The window section validated: windows and groupings, then the three lateness bounds (ms).
pub(super) struct Windows {
    pub config: WindowConfig,
    pub out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
    pub late_horizon_ms: i64,
}

impl WindowSection {
    pub(super) fn validate(&self, errs: &mut Vec<String>) -> Windows {
        let w = self;
        let mut sizes_ms = Vec::new();
        for (i, s) in w.sizes.iter().enumerate() {
            let d = duration(&format!("window.sizes[{i}]"), s, errs);
            if d.as_millis() > 0 && d.as_millis() % 1000 == 0 {
                sizes_ms.push(millis(d));
            } else if !d.is_zero() {
                errs.push(format!(
                    "window.sizes[{i}] = {s:?} must be a whole number of seconds"
                ));
            } else {
                errs.push(format!("window.sizes[{i}] must be > 0"));
            }
        }
        if w.sizes.is_empty() {
            errs.push("window.sizes must name at least one size".into());
        }
        let ooo = duration("window.out_of_orderness", &w.out_of_orderness, errs);
        let lateness = duration("window.allowed_lateness", &w.allowed_lateness, errs);
        let horizon = duration("window.late_horizon", &w.late_horizon, errs);
        if horizon < ooo + lateness {
            errs.push(format!(
                "window.late_horizon = {:?} must be at least out_of_orderness + allowed_lateness",
                w.late_horizon
            ));
        }
        let mut groupings = Vec::new();
        for (i, g) in w.grouping_sets.iter().enumerate() {
            match Grouping::new(g) {
                Ok(g) if groupings.iter().any(|x: &Grouping| x.mask == g.mask) => {
                    errs.push(format!("window.grouping_sets[{i}] repeats {:?}", g.name))
                }
                Ok(g) => groupings.push(g),
                Err(e) => errs.push(format!("window.grouping_sets[{i}]: {e}")),
            }
        }
        if w.grouping_sets.is_empty() {
            errs.push("window.grouping_sets must have at least one set ([] is overall)".into());
        }
        if groupings.len() > 32 {
            errs.push("window.grouping_sets: at most 32 sets".into());
        }
        Windows {
            config: WindowConfig::new(sizes_ms, groupings),
            out_of_orderness_ms: millis(ooo),
            allowed_lateness_ms: millis(lateness),
            late_horizon_ms: millis(horizon),
        }
    }
}
