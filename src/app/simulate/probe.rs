//! The delay targets' own setting, measured directly: segments at one fixed volume (constant over
//! the day, baseline NPS 30), a sustained drop of one size starting at a random hour, the
//! budget shared as in a 2,000-segment deployment shaped like the simulated year's: about 105
//! segments of non-nested groupings (overall, regions, teams, products, ...) and the rest
//! agents, nested in teams (the others answer once, in the first hour, and then stay
//! silent). Many probes per target give a mean delay tight enough to compare with
//! the targets; the simulated year shows the same detector under real cycles and mixes.

use crate::detect::{AlertState, Counts, Detector, Hierarchy, Params, SegmentKey};
use crate::generator::Rng;
use crate::stats::sample::{draw_counts, mix_for, poisson};

pub struct Probe {
    pub per_day: f64,
    pub size: f64,
    pub target_h: f64,
    /// Hours from each probe's drop start to its page (None: not within 10 days).
    pub delays: Vec<Option<i64>>,
    /// Pages before any drop started.
    pub false_pages: usize,
}

const TEAM: usize = 2;
const AGENT: usize = 3;
/// Segments of non-nested groupings in the simulated year (overall, 5 regions, 80 teams, 8
/// products, 3 tiers, 8 channel × bucket cells).
const NON_NESTED: usize = 105;

/// `probes` teams at `per_day` answers, `size` points off from a random hour of day 40 or
/// 41, among `segments` segments in all.
pub fn run(
    set: &Params,
    per_day: f64,
    size: f64,
    target_h: f64,
    probes: usize,
    segments: usize,
    seed: u64,
) -> Probe {
    let groupings = vec![String::new(), "team".into(), "agent".into()];
    let hier = Hierarchy::new(&groupings, &[("agent".into(), "team".into())]).unwrap_or_default();
    let mut det = Detector::new(set.clone(), hier);
    let overall = det.register(&SegmentKey::overall());
    let teams: Vec<usize> = (0..probes)
        .map(|i| det.register(&SegmentKey::of(&[(TEAM, &format!("probe{i}"))])))
        .collect();
    let mut silent = Vec::new();
    for i in 0..NON_NESTED.saturating_sub(probes + 1) {
        silent.push(det.register(&SegmentKey::of(&[(TEAM, &format!("silent{i}"))])));
    }
    for i in 0..segments.saturating_sub(NON_NESTED.max(probes + 1)) {
        silent.push(det.register(&SegmentKey::of(&[(AGENT, &format!("silent{i}"))])));
    }
    let mut r = Rng::new(seed);
    let h0 = 482_256;
    let starts: Vec<i64> = (0..probes).map(|_| 40 * 24 + r.range(0, 48)).collect();
    let end = 52 * 24;
    let normal = mix_for(30.0);
    let dropped = mix_for(30.0 - size);
    let mut fired: Vec<Option<i64>> = vec![None; probes];
    let mut false_pages = 0;
    for h in 0..end {
        let mut rows = Vec::with_capacity(probes + 1);
        let mut all = Counts::default();
        for (i, &id) in teams.iter().enumerate() {
            let m = if h >= starts[i] { dropped } else { normal };
            let n = poisson(&mut r, per_day / 24.0);
            let c = draw_counts(&mut r, n, &m);
            all.add(&c);
            rows.push((id, c));
        }
        rows.push((overall, all));
        if h == 0 {
            rows.extend(silent.iter().map(|&id| (id, Counts::new(1, 0, 0))));
        }
        for e in det.step_ids(h0 + h, &rows).alerts {
            if e.state != AlertState::Firing || e.grouping != "team" {
                continue;
            }
            let Some(i) = e
                .segment
                .strip_prefix("team=probe")
                .and_then(|x| x.parse::<usize>().ok())
            else {
                continue;
            };
            if h < starts[i] {
                false_pages += 1;
            } else if fired[i].is_none() {
                fired[i] = Some(h + 1 - starts[i]);
            }
        }
    }
    Probe {
        per_day,
        size,
        target_h,
        delays: fired,
        false_pages,
    }
}
