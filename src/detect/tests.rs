//! The detector on small synthetic histories with a known truth (fast, no services): a
//! sustained drop fires, dates its start, stays active while it lasts (the baseline does not
//! absorb it) and resolves after recovery; agents fold into their alerting team; the digest
//! flags a drop too small to page. The year-long calibration is `sim` (tests/detector_sim.rs).

use crate::stats::sample::{draw_counts, mix_for, poisson};

/// Dimension indexes as in `model::DIMENSIONS`.
const TEAM: usize = 2;
const AGENT: usize = 3;
use super::*;
use crate::generator::Rng;

fn draw(r: &mut Rng, per_day: f64, nps: f64) -> Counts {
    let n = poisson(r, per_day / 24.0);
    draw_counts(r, n, &mix_for(nps))
}

fn key(dim: usize, value: &str) -> SegmentKey {
    SegmentKey::of(&[(dim, value)])
}

struct Run {
    events: Vec<(i64, AlertEvent)>,
    digest: Vec<DigestEntry>,
}

/// Teams of `per_day` answers (NPS 30) with `agents` agents each, for `days`; `drop(team,
/// hour)` gives the points taken off.
fn run(
    teams: usize,
    agents: usize,
    per_day: f64,
    days: i64,
    budget: f64,
    drop: impl Fn(usize, i64) -> f64,
) -> Run {
    let set = Params {
        budget_per_week: budget,
        ..Params::default()
    };
    let groupings = vec![String::new(), "team".into(), "agent".into()];
    let mut hier =
        Hierarchy::new(&groupings, &[("agent".into(), "team".into())]).unwrap_or_default();
    for t in 0..teams {
        for a in 0..agents {
            hier.set_container("agent", &format!("t{t}a{a}"), &format!("t{t}"));
        }
    }
    let mut det = Detector::new(set, hier);
    let mut r = Rng::new(7);
    let mut out = Run {
        events: Vec::new(),
        digest: Vec::new(),
    };
    let h0 = 482_256; // a Monday
    for h in h0..h0 + days * 24 {
        let mut rows = Vec::new();
        let mut overall = Counts::default();
        for t in 0..teams {
            let mut team = Counts::default();
            for a in 0..agents {
                let c = draw(&mut r, per_day / agents as f64, 30.0 - drop(t, h - h0));
                rows.push((key(AGENT, &format!("t{t}a{a}")), c));
                team.add(&c);
            }
            rows.push((key(TEAM, &format!("t{t}")), team));
            overall.add(&team);
        }
        rows.push((SegmentKey::overall(), overall));
        let o = det.step(h, &rows);
        out.events.extend(o.alerts.into_iter().map(|e| (h - h0, e)));
        out.digest.extend(o.digest);
    }
    out
}

#[test]
fn a_sustained_drop_fires_stays_active_while_it_lasts_and_resolves_after_recovery() {
    let start = 40 * 24;
    let end = start + 12 * 24;
    let r = run(20, 1, 1000.0, 58, 0.01, |t, h| {
        if t == 3 && (start..end).contains(&h) {
            12.0
        } else {
            0.0
        }
    });
    let team: Vec<&(i64, AlertEvent)> = r
        .events
        .iter()
        .filter(|(_, e)| e.segment == "team=t3")
        .collect();
    assert_eq!(
        team.len(),
        2,
        "one firing, one resolved: {:?}",
        r.events
            .iter()
            .map(|(h, e)| (h, &e.segment, e.state))
            .collect::<Vec<_>>()
    );
    let (fired, f) = team[0];
    assert_eq!(f.state, AlertState::Firing);
    // 12 points at 1,000 a day: the figure for 10 points is ~31 h.
    assert!(
        (start..start + 48).contains(fired),
        "fired {} h after the start",
        fired - start
    );
    assert!(
        ((f.change_start / 3600 - 482_256) - start).abs() <= 12,
        "change start"
    );
    assert!(f.effect < -6.0 && f.nps_high < f.baseline_nps, "{f:?}");
    let (resolved, x) = team[1];
    assert_eq!(x.state, AlertState::Resolved);
    assert_eq!(x.alert_id, f.alert_id);
    // Active through the whole 12-day drop (the frozen baseline never absorbs it), resolved
    // within 3 days of the recovery.
    assert!(
        (end..end + 72).contains(resolved),
        "resolved at {} h after the end",
        resolved - end
    );
    let others: Vec<_> = r
        .events
        .iter()
        .filter(|(_, e)| e.segment != "team=t3" && e.grouping == "team")
        .collect();
    assert!(others.is_empty(), "no other team pages: {others:?}");
}

#[test]
fn agents_fold_into_their_alerting_team() {
    let start = 40 * 24;
    let r = run(6, 5, 2000.0, 46, 0.01, |t, h| {
        if t == 0 && h >= start {
            30.0
        } else {
            0.0
        }
    });
    let team = r.events.iter().find(|(_, e)| e.segment == "team=t0");
    assert!(
        team.is_some_and(|(h, _)| *h < start + 12),
        "the team pages fast"
    );
    let fired = team.map_or(0, |(h, _)| *h);
    let agents: Vec<_> = r
        .events
        .iter()
        .filter(|(h, e)| e.grouping == "agent" && *h >= fired)
        .collect();
    assert!(
        agents.is_empty(),
        "agents of an alerting team do not page: {agents:?}"
    );
    let contributors = &team
        .map(|(_, e)| e.contributors.clone())
        .unwrap_or_default();
    assert!(
        contributors
            .iter()
            .any(|c| c.segment.starts_with("agent=t0a")),
        "{contributors:?}"
    );
}

#[test]
fn the_digest_flags_a_drop_too_small_to_page() {
    let start = 40 * 24;
    let r = run(10, 1, 3000.0, 49, 0.0001, |t, h| {
        if t == 2 && h >= start {
            4.0
        } else {
            0.0
        }
    });
    let week: Vec<&DigestEntry> = r
        .digest
        .iter()
        .filter(|d| d.segment == "team=t2" && d.period_days == 7)
        .collect();
    assert!(!week.is_empty(), "the weekly digest flags the 4-point drop");
    assert!(week
        .iter()
        .all(|d| d.nps < d.expected_nps && d.p_value < 0.01));
    // Benjamini–Hochberg bounds the expected share of false entries per digest (per day and
    // period; a digest that flags nothing counts as 0) by q = 0.1; on days when nothing
    // dropped, any entry is false. Digests exist from day 9 (1 day gap + 7 of history + the
    // day itself) to day 48, two periods each.
    let mut by_digest: std::collections::BTreeMap<(i64, u32), (usize, usize)> = Default::default();
    for d in &r.digest {
        let e = by_digest.entry((d.day, d.period_days)).or_default();
        e.0 += 1;
        let truly = d.segment == "team=t2" || d.segment == "agent=t2a0" || d.segment == "overall";
        if !truly || d.day < (482_256 / 24 + 40) * 86_400 {
            e.1 += 1;
        }
    }
    let digests = (48 - 9) * 2;
    let fdr: f64 = by_digest
        .values()
        .map(|(n, f)| *f as f64 / *n as f64)
        .sum::<f64>()
        / f64::from(digests);
    assert!(
        fdr <= 0.15,
        "false-discovery rate {fdr:.3} over {digests} digests ({} flagged anything)",
        by_digest.len()
    );
}

/// The detector is a function of each hour's totals: the same answers handed over as one row
/// per segment, or as per-partition partial rows in shuffled order with the hours that had no
/// answers never stepped, give the same alerts and digests.
#[test]
fn rows_split_by_partition_shuffled_and_empty_hours_skipped_change_nothing() {
    let mut r = Rng::new(3);
    let h0 = 482_256;
    let days = 46;
    let mut data: Vec<(i64, Vec<(SegmentKey, Counts)>)> = Vec::new();
    for h in 0..days * 24 {
        // Nights (2-4 h UTC) have no answers at all: nothing arrives for those hours.
        let quiet = (2..5).contains(&(h % 24));
        let mut rows = Vec::new();
        let mut overall = Counts::default();
        for t in 0..8 {
            let nps = if t == 1 && h >= 40 * 24 { 5.0 } else { 30.0 };
            let c = if quiet {
                Counts::default()
            } else {
                draw(&mut r, 800.0, nps)
            };
            rows.push((key(TEAM, &format!("t{t}")), c));
            overall.add(&c);
        }
        rows.push((SegmentKey::overall(), overall));
        data.push((h0 + h, rows));
    }
    let groupings = vec![String::new(), "team".into()];
    let detector = || {
        let set = Params {
            budget_per_week: 0.05,
            ..Params::default()
        };
        Detector::new(set, Hierarchy::new(&groupings, &[]).unwrap_or_default())
    };
    let record = |o: Output, into: &mut Vec<String>| {
        for e in o.alerts {
            into.push(serde_json::to_string(&e).unwrap_or_default());
        }
        for d in o.digest {
            into.push(serde_json::to_string(&d).unwrap_or_default());
        }
    };
    let mut whole = detector();
    let mut expected = Vec::new();
    for (h, rows) in &data {
        record(whole.step(*h, rows), &mut expected);
    }
    let mut split = detector();
    let mut got = Vec::new();
    for (h, rows) in &data {
        let mut parts: Vec<(SegmentKey, Counts)> = Vec::new();
        for (k, c) in rows {
            let mut by_partition = [Counts::default(); 4];
            for (class, n) in [(0, c.promoters), (1, c.passives), (2, c.detractors)] {
                for _ in 0..n {
                    let p = &mut by_partition[r.below(4) as usize];
                    match class {
                        0 => p.promoters += 1,
                        1 => p.passives += 1,
                        _ => p.detractors += 1,
                    }
                }
            }
            parts.extend(
                by_partition
                    .into_iter()
                    .filter(|p| p.n() > 0)
                    .map(|p| (k.clone(), p)),
            );
        }
        if parts.is_empty() {
            continue;
        }
        for i in (1..parts.len()).rev() {
            parts.swap(i, r.below(i as u64 + 1) as usize);
        }
        record(split.step(*h, &parts), &mut got);
    }
    assert!(
        expected.iter().any(|e| e.contains("team=t1")),
        "the drop pages: {expected:?}"
    );
    assert_eq!(got, expected);
}
