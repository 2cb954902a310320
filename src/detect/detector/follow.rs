//! An open alert follows its drop: it resolves on evidence of recovery, updates in place
//! when the drop deepens (a further drop below the current level is a new CUSUM, so one open
//! alert cannot hide a second drop), becomes a ticket at the maximum page age, and after
//! `accept_after` resolves as a new baseline: the segment's baseline restarts from the level's
//! start, so a permanent shift stops being an alert.

use super::{Active, Detector};
use crate::detect::alert::{AlertEvent, AlertState};
use crate::detect::cusum::{alternative, llr, step_bank, MIN_THRESHOLD};
use crate::stats::{tilt, Counts};

impl Detector {
    pub(super) fn follow(&mut self, i: usize, hour: i64, c: &Counts) -> Option<AlertEvent> {
        let margin = self.set.baseline_margin_se;
        let resolve_share = self.set.resolve_share;
        let s = &mut self.segs[i];
        let a = s.active.as_mut()?;
        let b = &a.baseline;
        let m0 = b.expected(hour, margin);
        // Recovery is judged against the grouping's own δ (the bank's smallest), not the
        // size that fired: "back near the baseline" must be shown against "still δ
        // below", or one good hour would end an alert for a large drop.
        let (d, h) = s
            .bank
            .first()
            .map_or((a.drop, 0.0), |c| (c.delta, c.threshold));
        let (theta, lnz) = alternative(b.null_mix(hour, margin), m0, d);
        a.recovery = (a.recovery - llr(c, theta, lnz, b.phi)).max(0.0);
        let need = (resolve_share * h).max(MIN_THRESHOLD);
        let age = hour - a.fired_hour;
        if a.recovery >= need && age >= i64::from(self.set.min_active_hours) {
            let recovery = a.recovery;
            return self.close(i, hour, "recovered", recovery, need);
        }
        if age >= i64::from(self.set.accept_after_days) * 24 {
            return self.accept(i, hour);
        }
        // A further drop: the bank again, against the current level.
        let level = m0 - a.drop;
        let null = tilt(b.mix, level).0;
        let phi = b.phi;
        if let Some(k) = step_bank(&mut a.follow, hour, c, null, level, phi) {
            let cu = a.follow[k].clone();
            a.drop += cu.delta;
            a.level_start = cu.start;
            for f in &mut a.follow {
                f.reset(hour + 1);
            }
            let (drop, aged) = (a.drop, a.aged);
            let severity = self.severity(i, 100.0 * drop, aged);
            return self.update(i, hour, severity, cu.s, cu.threshold);
        }
        let paging = a.event.severity.pages();
        if !a.aged && paging && age >= i64::from(self.set.max_page_age_hours) {
            a.aged = true;
            let (st, th, drop) = (a.event.statistic, a.event.threshold, a.drop);
            let severity = self.severity(i, 100.0 * drop, true);
            return self.update(i, hour, severity, st, th);
        }
        None
    }

    /// The open alert re-described at `hour` with its new severity; the reason is
    /// `escalated` when the severity rose, `aged` when it fell, `deepened` otherwise.
    fn update(
        &mut self,
        i: usize,
        hour: i64,
        severity: crate::detect::Severity,
        statistic: f64,
        threshold: f64,
    ) -> Option<AlertEvent> {
        let a = self.segs[i].active.as_ref()?;
        let mut e = self.describe(
            i,
            hour,
            a.change_start,
            a.drop,
            statistic,
            threshold,
            &a.baseline,
        );
        e.state = AlertState::Updated;
        e.reason = match severity.cmp(&a.event.severity) {
            std::cmp::Ordering::Greater => "escalated",
            std::cmp::Ordering::Less => "aged",
            std::cmp::Ordering::Equal => "deepened",
        }
        .into();
        e.severity = severity;
        keep_identity(&mut e, &a.event);
        let a = self.segs[i].active.as_mut()?;
        a.event = e.clone();
        Some(e)
    }

    /// Ends the open alert (`recovered`, or `new_baseline` from [`Detector::accept`]).
    fn close(
        &mut self,
        i: usize,
        hour: i64,
        reason: &str,
        statistic: f64,
        threshold: f64,
    ) -> Option<AlertEvent> {
        let s = &mut self.segs[i];
        let a: Active = s.active.take()?;
        for cu in &mut s.bank {
            cu.reset(hour + 1);
        }
        let mut e = self.describe(i, hour, a.change_start, a.drop, 0.0, 0.0, &a.baseline);
        keep_identity(&mut e, &a.event);
        e.severity = a.event.severity;
        e.statistic = statistic;
        e.threshold = threshold;
        e.state = AlertState::Resolved;
        e.reason = reason.into();
        Some(e)
    }

    /// A level that has lasted `accept_after`: the hours since it began are history again,
    /// the baseline restarts there (refitted at the next midnight, once the minimum
    /// history is there) and the alert resolves as `new_baseline`.
    fn accept(&mut self, i: usize, hour: i64) -> Option<AlertEvent> {
        let start = self.segs[i].active.as_ref()?.level_start;
        let s = &mut self.segs[i];
        s.epoch = start;
        for h in start.max(hour + 1 - self.ring as i64)..=hour {
            s.history.include(h);
        }
        s.baseline = None;
        self.close(i, hour, "new_baseline", 0.0, 0.0)
    }
}

/// What an alert keeps across updates: its id, when it fired and its incident.
fn keep_identity(e: &mut AlertEvent, old: &AlertEvent) {
    e.alert_id = old.alert_id.clone();
    e.fired_at = old.fired_at;
    e.incident_id = old.incident_id.clone();
    e.detractor_categories = old.detractor_categories.clone();
    e.detractor_response_ids = old.detractor_response_ids.clone();
    for f in &old.data_flags {
        if !e.data_flags.contains(f) {
            e.data_flags.push(f.clone());
        }
    }
}
