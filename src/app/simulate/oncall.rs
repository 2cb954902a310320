//! What the on-call person gets: notifications (an incident opened, or its severity raised)
//! rather than segment alerts, split by who receives them (`page`/`critical` to on-call,
//! `ticket` to the business-hours receiver), and how many there are per detected drop.

use super::report::{delay, is_true};
use super::SimResult;
use crate::detect::Severity;
use crate::stats::poisson_interval;
use std::collections::HashSet;
use std::fmt::Write;

pub struct OnCall {
    pub incidents: usize,
    pub notifications: usize,
    pub pages: usize,
    pub false_pages: usize,
    pub false_tickets: usize,
    pub pages_per_week: f64,
    pub false_pages_per_week: (f64, f64, f64),
    pub detected: usize,
    pub per_detected: f64,
    pub per_incident: f64,
}

pub fn on_call(r: &SimResult) -> OnCall {
    let weeks = f64::from(r.config.days) / 7.0;
    let inn: Vec<&(usize, i64, Severity, String)> = r
        .notifications
        .iter()
        .filter(|n| n.1 >= r.eval_from && n.1 < r.eval_to)
        .collect();
    let incidents: HashSet<&str> = inn.iter().map(|n| n.3.as_str()).collect();
    let pages: Vec<_> = inn.iter().filter(|n| n.2.pages()).collect();
    let false_pages = pages.iter().filter(|n| !is_true(r, n.0, n.1)).count();
    let false_tickets = inn
        .iter()
        .filter(|n| !n.2.pages() && !is_true(r, n.0, n.1))
        .count();
    let detected = r
        .drops
        .iter()
        .filter(|d| delay(d, &r.detector_pages).is_some())
        .count();
    let (lo, hi) = poisson_interval(false_pages as u64);
    OnCall {
        incidents: incidents.len(),
        notifications: inn.len(),
        pages: pages.len(),
        false_pages,
        false_tickets,
        pages_per_week: pages.len() as f64 / weeks,
        false_pages_per_week: (false_pages as f64 / weeks, lo / weeks, hi / weeks),
        detected,
        per_detected: inn.len() as f64 / detected.max(1) as f64,
        per_incident: inn.len() as f64 / incidents.len().max(1) as f64,
    }
}

pub fn section(s: &mut String, r: &SimResult) {
    let o = on_call(r);
    let weeks = f64::from(r.config.days) / 7.0;
    let _ = writeln!(s, "\n### What on-call gets\n");
    let _ = writeln!(
        s,
        "Segment alerts above are grouped into incidents; a notification is an incident opened or raised to a severity it had not had. `page`/`critical` go to on-call, `ticket` to the business-hours receiver.\n"
    );
    let _ = writeln!(s, "| | value |\n|---|---|");
    let _ = writeln!(s, "| incidents | {} |", o.incidents);
    let _ = writeln!(
        s,
        "| notifications (pages + tickets) | {} ({:.1} a week) |",
        o.notifications,
        o.notifications as f64 / weeks
    );
    let _ = writeln!(
        s,
        "| pages (on-call) | {} ({:.1} a week) |",
        o.pages, o.pages_per_week
    );
    let _ = writeln!(
        s,
        "| false pages a week (95% Poisson) | {:.2} ({:.2}–{:.2}) |",
        o.false_pages_per_week.0, o.false_pages_per_week.1, o.false_pages_per_week.2
    );
    let _ = writeln!(
        s,
        "| false tickets a week | {:.2} |",
        o.false_tickets as f64 / weeks
    );
    let _ = writeln!(
        s,
        "| notifications per detected drop | {:.2} ({} notifications, {} drops detected) |",
        o.per_detected, o.notifications, o.detected
    );
    let _ = writeln!(s, "| notifications per incident | {:.2} |", o.per_incident);
    let mut by: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for &(seg, h) in r
        .detector_pages
        .iter()
        .filter(|p| p.1 >= r.eval_from && p.1 < r.eval_to)
    {
        let e = by.entry(r.segs[seg].grouping.as_str()).or_default();
        e.0 += 1;
        if !is_true(r, seg, h) {
            e.1 += 1;
        }
    }
    let _ = writeln!(
        s,
        "\nSegment alerts by grouping (false: no injected drop of δ/4 behind them):\n\n| grouping | alerts | false | false a week |\n|---|---|---|---|"
    );
    for (g, (n, f)) in by {
        let _ = writeln!(s, "| {g} | {n} | {f} | {:.2} |", f as f64 / weeks);
    }
}
