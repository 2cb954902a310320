//! The `[detector]` section: the NPS-drop detector's statistics and where its alerts go
//! (docs/ALERTS.md).

use super::duration;
use crate::detect::segment::grouping_mask;
use crate::model::DIMENSIONS;
use crate::secret::Url;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSection {
    /// Expected false pages per week across all segments together.
    pub budget_per_week: f64,
    /// Baseline window, whole days.
    pub baseline: String,
    /// Gap between the baseline window and now, whole days.
    pub baseline_gap: String,
    /// History needed before segments are watched, whole days.
    pub min_history: String,
    /// Smallest drop worth a page per grouping, NPS points; keys are grouping names as in
    /// `window.grouping_sets` joined by ',' ("overall" for []).
    pub delta: BTreeMap<String, f64>,
    pub max_delta: f64,
    pub baseline_margin_se: f64,
    pub resolve_share: f64,
    pub min_active: String,
    pub digest_fdr: f64,
    /// [child, container] dimension pairs, e.g. agents belong to teams.
    pub nesting: Vec<[String; 2]>,
    /// Share of the budget for segments of nested groupings (agents).
    pub nested_budget_share: f64,
    /// Groupings that page at δ (None: every grouping without team, agent or tier).
    pub page_groupings: Option<Vec<String>>,
    /// An alert open this long resolves as a new baseline (whole days).
    pub accept_after: String,
    /// A paging alert open this long becomes a ticket.
    pub max_page_age: String,
    /// `page`, or `shadow`: evaluate and record, never deliver.
    pub mode: String,
    /// Grafana's base URL for the deep link each alert carries; empty: no link.
    pub grafana_url: String,
    /// The runbook each alert points to.
    pub runbook_url: String,
    /// How often the service looks for newly complete hours.
    pub poll_interval: String,
    /// A partition whose complete hours lag the most advanced one by more than this no
    /// longer holds the detector back (a stalled partition cannot silence alerting).
    pub max_partition_lag: String,
    /// Alertmanager base URL (http://host:9093); empty: not sent.
    pub alertmanager_url: Url,
    /// Kafka topic of alert events keyed by segment; empty: not produced.
    pub alert_topic: String,
    /// /metrics of the detector service; empty disables it.
    pub metrics_listen: String,
}

impl Default for DetectorSection {
    fn default() -> Self {
        DetectorSection {
            budget_per_week: 1.0,
            baseline: "28d".into(),
            baseline_gap: "1d".into(),
            min_history: "7d".into(),
            delta: BTreeMap::new(),
            max_delta: 40.0,
            baseline_margin_se: 0.75,
            resolve_share: 0.5,
            min_active: "2h".into(),
            digest_fdr: 0.1,
            nesting: vec![["agent".into(), "team".into()]],
            nested_budget_share: 0.1,
            page_groupings: None,
            accept_after: "14d".into(),
            max_page_age: "72h".into(),
            mode: "page".into(),
            grafana_url: "http://localhost:3000".into(),
            runbook_url: "docs/RUNBOOK.md".into(),
            poll_interval: "1m".into(),
            max_partition_lag: "2h".into(),
            alertmanager_url: Url::default(),
            alert_topic: "cx-nps-alerts".into(),
            metrics_listen: "127.0.0.1:9899".into(),
        }
    }
}

/// What the detector service runs with.
#[derive(Clone, Debug)]
pub struct DetectorSettings {
    pub params: crate::detect::Params,
    pub nesting: Vec<(String, String)>,
    pub poll_interval: Duration,
    pub max_partition_lag_hours: i64,
    /// Alertmanager base URL; empty: not sent.
    pub alertmanager_url: Url,
    /// Kafka topic of alert events; empty: not produced.
    pub alert_topic: String,
    /// /metrics of the detector service; empty: not served.
    pub metrics_listen: String,
    /// Evaluate and record only (`mode = "shadow"`).
    pub shadow: bool,
    pub grafana_url: String,
    pub runbook_url: String,
}

fn whole_days(key: &str, s: &str, min: u64, errs: &mut Vec<String>) -> u32 {
    let d = duration(key, s, errs);
    let secs = d.as_secs();
    if secs % 86_400 != 0 || secs / 86_400 < min {
        errs.push(format!(
            "{key} = {s:?} must be a whole number of days, at least {min}"
        ));
        return 1;
    }
    u32::try_from(secs / 86_400).unwrap_or(u32::MAX)
}

impl DetectorSection {
    /// Who gets paged, when an alert stops paging, and where it links to.
    fn validate_paging(
        &self,
        groupings: &[u8],
        stats: &mut crate::detect::Params,
        errs: &mut Vec<String>,
    ) {
        if !(self.nested_budget_share > 0.0 && self.nested_budget_share < 1.0) {
            errs.push("detector.nested_budget_share must be in (0, 1)".into());
        }
        stats.nested_budget_share = self.nested_budget_share;
        if let Some(gs) = &self.page_groupings {
            let mut masks = Vec::new();
            for g in gs {
                let name = if g == "overall" { "" } else { g.as_str() };
                match grouping_mask(name) {
                    Some(m) if groupings.contains(&m) => masks.push(m),
                    _ => errs.push(format!(
                        "detector.page_groupings: {g:?} is not one of window.grouping_sets (\"overall\" for [])"
                    )),
                }
            }
            stats.page_masks = Some(masks);
        }
        stats.accept_after_days = whole_days("detector.accept_after", &self.accept_after, 1, errs);
        let age = duration("detector.max_page_age", &self.max_page_age, errs);
        stats.max_page_age_hours = u32::try_from(age.as_secs() / 3600).unwrap_or(u32::MAX);
        if stats.max_page_age_hours == 0 {
            errs.push("detector.max_page_age must be at least 1h".into());
        }
        if !["page", "shadow"].contains(&self.mode.as_str()) {
            errs.push(format!(
                "detector.mode = {:?} must be \"page\" or \"shadow\"",
                self.mode
            ));
        }
        let g = &self.grafana_url;
        if !(g.is_empty() || g.starts_with("http://") || g.starts_with("https://")) {
            errs.push(format!(
                "detector.grafana_url = {:?} must start with http:// or https://",
                crate::secret::redact_url(&self.grafana_url)
            ));
        }
    }

    pub(super) fn validate(&self, groupings: &[u8], errs: &mut Vec<String>) -> DetectorSettings {
        let mut stats = crate::detect::Params::default();
        if !(self.budget_per_week > 0.0 && self.budget_per_week <= 1000.0) {
            errs.push("detector.budget_per_week must be in (0, 1000]".into());
        }
        stats.budget_per_week = self.budget_per_week;
        stats.baseline_days = whole_days("detector.baseline", &self.baseline, 1, errs).min(366);
        stats.gap_days = whole_days("detector.baseline_gap", &self.baseline_gap, 0, errs).min(30);
        stats.min_history_days = whole_days("detector.min_history", &self.min_history, 1, errs);
        if stats.min_history_days > stats.baseline_days {
            errs.push("detector.min_history must not exceed detector.baseline".into());
        }
        for (g, d) in &self.delta {
            let name = if g == "overall" { "" } else { g.as_str() };
            match grouping_mask(name) {
                Some(m) if groupings.contains(&m) => {
                    if !(*d > 0.0 && *d <= 100.0) {
                        errs.push(format!(
                            "detector.delta.{g} = {d} must be in (0, 100] points"
                        ));
                    }
                    stats.deltas.push((m, *d));
                }
                _ => errs.push(format!(
                    "detector.delta.{g}: not one of window.grouping_sets (\"overall\" for [])"
                )),
            }
        }
        if !(self.max_delta > 0.0 && self.max_delta <= 100.0) {
            errs.push("detector.max_delta must be in (0, 100] points".into());
        }
        stats.max_delta = self.max_delta;
        if !(0.0..=5.0).contains(&self.baseline_margin_se) {
            errs.push("detector.baseline_margin_se must be in [0, 5]".into());
        }
        stats.baseline_margin_se = self.baseline_margin_se;
        if !(self.resolve_share > 0.0 && self.resolve_share <= 1.0) {
            errs.push("detector.resolve_share must be in (0, 1]".into());
        }
        stats.resolve_share = self.resolve_share;
        let min_active = duration("detector.min_active", &self.min_active, errs);
        stats.min_active_hours = u32::try_from(min_active.as_secs() / 3600).unwrap_or(u32::MAX);
        if !(self.digest_fdr > 0.0 && self.digest_fdr < 1.0) {
            errs.push("detector.digest_fdr must be in (0, 1)".into());
        }
        stats.digest_fdr = self.digest_fdr;
        let mut nesting = Vec::new();
        for (i, [c, p]) in self.nesting.iter().enumerate() {
            if !DIMENSIONS.contains(&c.as_str()) || !DIMENSIONS.contains(&p.as_str()) || c == p {
                errs.push(format!(
                    "detector.nesting[{i}] = [{c:?}, {p:?}]: two different dimensions of {}",
                    DIMENSIONS.join(", ")
                ));
            } else {
                nesting.push((c.clone(), p.clone()));
            }
        }
        self.validate_paging(groupings, &mut stats, errs);
        let poll_interval = duration("detector.poll_interval", &self.poll_interval, errs);
        if poll_interval.is_zero() {
            errs.push("detector.poll_interval must be > 0".into());
        }
        let lag = duration("detector.max_partition_lag", &self.max_partition_lag, errs);
        let url = &self.alertmanager_url;
        super::http_url("detector.alertmanager_url", url, errs);
        if !self.metrics_listen.is_empty()
            && self.metrics_listen.parse::<std::net::SocketAddr>().is_err()
        {
            errs.push(format!(
                "detector.metrics_listen = {:?} is not an address like 127.0.0.1:9899",
                self.metrics_listen
            ));
        }
        DetectorSettings {
            params: stats,
            nesting,
            poll_interval,
            max_partition_lag_hours: i64::try_from(lag.as_secs() / 3600).unwrap_or(i64::MAX),
            alertmanager_url: self.alertmanager_url.clone(),
            alert_topic: self.alert_topic.clone(),
            metrics_listen: self.metrics_listen.clone(),
            shadow: self.mode == "shadow",
            grafana_url: self.grafana_url.trim_end_matches('/').to_string(),
            runbook_url: self.runbook_url.clone(),
        }
    }
}
