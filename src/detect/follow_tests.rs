//! Alerts that follow their drop, and incidents, on small synthetic histories with a known
//! truth (fast, no services): a deepening drop updates its alert in place and escalates, a
//! permanent shift becomes the new baseline, a paging alert ages into a ticket, a new
//! segment is watched from its own first hour with its own volume, and a team drop that
//! moves the overall NPS is one incident. The shared answers [`Detector::group`] needs are
//! counted here from the drawn answers, independently of the detector.

use super::*;
use crate::generator::Rng;
use crate::stats::sample::{draw_counts, mix_for, poisson};
use std::collections::HashMap;

const TEAM: usize = 2;
const H0: i64 = 482_256; // a Monday

struct World {
    det: Detector,
    r: Rng,
    /// Per hour: each team's counts.
    hours: HashMap<i64, Vec<Counts>>,
    events: Vec<(i64, AlertEvent)>,
}

fn team(t: usize) -> SegmentKey {
    SegmentKey::of(&[(TEAM, &format!("t{t}"))])
}

impl World {
    fn new(set: Params) -> World {
        let groupings = vec![String::new(), "team".into()];
        let hier = Hierarchy::new(&groupings, &[]).unwrap_or_default();
        World {
            det: Detector::new(set, hier),
            r: Rng::new(11),
            hours: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// What teams `x` and `a` share over the request's hours: a team with itself or with
    /// overall, nothing between two teams.
    fn shared(&self, q: &detector::OverlapRequest) -> Counts {
        let mut c = Counts::default();
        let inner = if q.x.mask == 0 { &q.a } else { &q.x };
        let other = if q.x.mask == 0 { &q.x } else { &q.a };
        if other.mask != 0 && other != inner {
            return c;
        }
        let t: usize = inner.values[TEAM]
            .trim_start_matches('t')
            .parse()
            .unwrap_or(usize::MAX);
        for h in q.from_hour..q.to_hour {
            if let Some(x) = self.hours.get(&h).and_then(|v| v.get(t)) {
                c.add(x);
            }
        }
        c
    }

    /// One hour: teams at `per_day[t]` answers a day (0: not yet answering), NPS 30 minus
    /// `drop(t, hour)`.
    fn hour(&mut self, h: i64, per_day: &[f64], drop: &dyn Fn(usize, i64) -> f64) {
        let mut rows = Vec::new();
        let mut overall = Counts::default();
        let mut teams = Vec::new();
        for (t, &v) in per_day.iter().enumerate() {
            let n = poisson(&mut self.r, v / 24.0);
            let c = draw_counts(&mut self.r, n, &mix_for(30.0 - drop(t, h)));
            if v > 0.0 {
                rows.push((team(t), c));
            }
            overall.add(&c);
            teams.push(c);
        }
        rows.push((SegmentKey::overall(), overall));
        self.hours.insert(H0 + h, teams);
        let mut out = self.det.step(H0 + h, &rows);
        let reqs = self.det.overlap_requests(&out);
        let overlaps: Vec<_> = reqs
            .into_iter()
            .map(|q| {
                let c = self.shared(&q);
                (q, c)
            })
            .collect();
        self.det.group(&mut out, &overlaps);
        self.events.extend(out.alerts.into_iter().map(|e| (h, e)));
    }

    fn of(&self, segment: &str) -> Vec<&(i64, AlertEvent)> {
        self.events
            .iter()
            .filter(|(_, e)| e.segment == segment)
            .collect()
    }
}

/// A budget of 0.01 false alerts a week: these worlds have a handful of segments, and the
/// tests are about what follows a real drop, not about the rate of false ones.
fn params() -> Params {
    Params {
        budget_per_week: 0.01,
        ..Params::default()
    }
}

fn run(days: i64, per_day: &[f64], drop: impl Fn(usize, i64) -> f64) -> World {
    let mut w = World::new(params());
    for h in 0..days * 24 {
        w.hour(h, per_day, &drop);
    }
    w
}

#[test]
fn a_deepening_drop_updates_its_alert_in_place_and_escalates_to_a_page() {
    let (from, deeper) = (40 * 24, 46 * 24);
    let w = run(52, &[1000.0; 6], |t, h| match (t, h) {
        (3, h) if h >= deeper => 30.0,
        (3, h) if h >= from => 10.0,
        _ => 0.0,
    });
    let ev = w.of("team=t3");
    let first = ev.first().map(|x| &x.1);
    assert!(
        first.is_some_and(|e| e.state == AlertState::Firing && e.severity == Severity::Ticket),
        "a 10-point team drop is a ticket: {ev:?}"
    );
    let id = first.map(|e| e.alert_id.clone()).unwrap_or_default();
    let up: Vec<&&(i64, AlertEvent)> = ev
        .iter()
        .filter(|(_, e)| e.state == AlertState::Updated)
        .collect();
    assert!(!up.is_empty(), "the deeper drop updates the alert: {ev:?}");
    let (h, e) = (up[0].0, &up[0].1);
    assert!(
        h >= deeper && h < deeper + 24,
        "within a day of deepening: {h}"
    );
    assert_eq!(e.alert_id, id, "in place");
    assert_eq!(e.reason, "escalated");
    assert_eq!(e.severity, Severity::Page);
    assert!(e.notify, "a ticket becoming a page notifies on-call");
    assert!(e.drop >= 20.0, "{e:?}");
    assert!(
        !ev.iter()
            .any(|(_, e)| e.state == AlertState::Firing && e.alert_id != id),
        "no second alert while the first is open: {ev:?}"
    );
}

#[test]
fn a_permanent_shift_resolves_into_a_new_baseline_and_stays_quiet() {
    let from = 40 * 24;
    let w = run(75, &[1000.0; 6], |t, h| {
        if t == 2 && h >= from {
            15.0
        } else {
            0.0
        }
    });
    let ev = w.of("team=t2");
    let fired = ev.iter().find(|(_, e)| e.state == AlertState::Firing);
    let resolved = ev.iter().find(|(_, e)| e.state == AlertState::Resolved);
    let (Some((hf, _)), Some((hr, r))) = (fired, resolved) else {
        panic!("fired and resolved: {ev:?}");
    };
    assert_eq!(r.reason, "new_baseline", "{r:?}");
    assert_eq!(hr - hf, 14 * 24, "after accept_after");
    assert!(
        !ev.iter()
            .any(|(h, e)| *h > *hr && e.state == AlertState::Firing),
        "the new level is the baseline: {ev:?}"
    );
}

#[test]
fn a_paging_alert_ages_into_a_ticket() {
    let from = 40 * 24;
    let w = run(48, &[1000.0; 4], |_, h| if h >= from { 12.0 } else { 0.0 });
    let ev = w.of("overall");
    let fired = ev.iter().find(|(_, e)| e.state == AlertState::Firing);
    let Some((hf, f)) = fired else {
        panic!("overall fires: {ev:?}")
    };
    assert!(f.severity.pages(), "{f:?}");
    let aged = ev.iter().find(|(_, e)| e.reason == "aged");
    let Some((ha, a)) = aged else {
        panic!("ages: {ev:?}")
    };
    assert_eq!(ha - hf, 72);
    assert_eq!(a.severity, Severity::Ticket);
    assert_eq!(a.alert_id, f.alert_id);
}

#[test]
fn a_new_segment_is_watched_from_its_own_first_hour_with_its_own_volume() {
    let mut w = World::new(params());
    let id = w.det.register(&team(5));
    let mut volumes = [800.0; 6];
    volumes[5] = 0.0;
    for h in 0..60 * 24 {
        if h == 40 * 24 {
            volumes[5] = 1200.0;
        }
        w.hour(h, &volumes, &|_, _| 0.0);
        if h == 46 * 24 {
            assert!(w.det.baseline_of(id).is_none(), "six days of history");
        }
    }
    let (b, _) = w
        .det
        .baseline_of(id)
        .unwrap_or_else(|| panic!("watched after 7 days + gap"));
    let per_hour = 1200.0 / 24.0;
    assert!(
        (b.per_hour - per_hour).abs() < 0.1 * per_hour,
        "its own volume, not diluted by the hours before it existed: {}",
        b.per_hour
    );
}

#[test]
fn a_team_drop_that_moves_overall_is_one_incident() {
    let from = 40 * 24;
    let w = run(46, &[1000.0; 4], |t, h| {
        if t == 0 && h >= from {
            30.0
        } else {
            0.0
        }
    });
    let fired: Vec<&AlertEvent> = w
        .events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.state == AlertState::Firing)
        .collect();
    let segs: Vec<&str> = fired.iter().map(|e| e.segment.as_str()).collect();
    assert!(
        segs.contains(&"team=t0") && segs.contains(&"overall"),
        "{segs:?}"
    );
    let incidents: std::collections::BTreeSet<&str> =
        fired.iter().map(|e| e.incident_id.as_str()).collect();
    assert_eq!(incidents.len(), 1, "{fired:?}");
    let opened = fired.iter().filter(|e| e.notify).count();
    assert_eq!(opened, 1, "one notification opens it: {fired:?}");
}

#[test]
fn two_unrelated_team_drops_are_two_incidents() {
    let from = 40 * 24;
    let w = run(46, &[1000.0; 6], |t, h| {
        if (t == 1 || t == 4) && h >= from {
            30.0
        } else {
            0.0
        }
    });
    let ids: std::collections::BTreeSet<&str> = w
        .events
        .iter()
        .filter(|(_, e)| e.grouping == "team" && e.state == AlertState::Firing)
        .map(|(_, e)| e.incident_id.as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{:?}", w.events);
}

#[test]
fn a_drop_that_is_only_a_change_of_mix_says_so_and_shows_the_volume() {
    // Two teams at NPS 0 and 60 (overall 30). From day 40 the low team answers 5x as often: no
    // team is less happy, overall falls to 10 through the mix alone, with three times the answers.
    // A tenth of the usual small-world budget: this world's hourly team mix is noisy.
    let mut w = World::new(Params {
        budget_per_week: 0.001,
        ..params()
    });
    let from = 40 * 24;
    for h in 0..44 * 24 {
        let low = if h >= from { 5000.0 } else { 1000.0 };
        w.hour(h, &[low, 1000.0], &|t, _| if t == 0 { 30.0 } else { -30.0 });
    }
    let e = w
        .of("overall")
        .into_iter()
        .filter(|x| x.0 >= from)
        .map(|x| &x.1)
        .find(|e| e.state == AlertState::Firing)
        .unwrap_or_else(|| panic!("overall fires: {:?}", w.events))
        .clone();
    let split = e.mix_split.clone().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(split.by, "team");
    assert!(split.mix < -8.0, "{split:?} {e:?}");
    assert!(split.within.abs() < 0.5 * split.mix.abs(), "{split:?}");
    // Half or more of the hours since the change start carry the new volume.
    assert!(e.volume_ratio > 1.5, "{e:?}");
    assert_eq!(
        e.data_flags.contains(&"volume_high".to_string()),
        e.volume_ratio > 2.0,
        "{e:?}"
    );
}
