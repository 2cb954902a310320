//! The simulation harness (`cx-pipeline simulate-detector`, README *Alerts*): a simulated
//! year of a support organisation's answers with known drops and decoys, fed hour by hour to
//! the detector and minute by minute to the Prometheus rule it replaces, then scored against
//! the ground truth (`report`).

pub mod probe;
pub mod report;
pub mod rule;
pub mod world;

use crate::detect::{Counts, Detector, Hierarchy, Params, SegmentKey};
use crate::rng::Rng;
use crate::stats::sample::poisson;
use std::collections::HashMap;
use world::{
    Attrs, World, AGENT, BUCKET, BUCKETS, CHANNEL, CHANNELS, PRODUCT, REGION, REGIONS, TEAM, TIER,
    TIERS,
};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Evaluated days, after the warm-up.
    pub days: u32,
    /// Days before evaluation starts: the detector's baselines fill up.
    pub warmup_days: u32,
    pub teams: usize,
    pub agents_per_team: f64,
    pub drops: usize,
    pub settings: Params,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            days: 365,
            warmup_days: 35,
            teams: 80,
            agents_per_team: 24.0,
            drops: 400,
            settings: Params::default(),
        }
    }
}

/// A set of answers a drop or a segment covers: the dimensions in `mask` must equal `values`.
#[derive(Clone, Copy, Debug)]
pub struct Unit {
    pub mask: u8,
    pub values: Attrs,
}

impl Unit {
    fn matches(&self, a: &Attrs) -> bool {
        (0..7).all(|i| self.mask & (1 << i) == 0 || self.values[i] == a[i])
    }
}

#[derive(Clone, Debug)]
pub struct InjectedDrop {
    pub unit: Unit,
    /// Segment of the unit itself.
    pub seg: usize,
    pub start: i64,
    pub hours: i64,
    /// NPS points taken off every answer of the unit.
    pub size: f64,
    /// Share of each segment's answers during the drop that came from the unit.
    pub share: HashMap<usize, f64>,
    /// Answers of the unit's segment in each of the first 96 hours from the start.
    pub trace: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct Decoy {
    pub kind: &'static str,
    pub start: i64,
    pub hours: i64,
}

#[derive(Clone, Debug)]
pub struct SegMeta {
    pub label: String,
    pub grouping: String,
    pub delta: f64,
    pub per_day: f64,
}

pub struct SimResult {
    pub config: SimConfig,
    pub eval_from: i64,
    pub eval_to: i64,
    pub segs: Vec<SegMeta>,
    pub drops: Vec<InjectedDrop>,
    pub decoys: Vec<Decoy>,
    /// (segment, hour fired) of the detector and of today's rule.
    pub detector_pages: Vec<(usize, i64)>,
    pub rule_pages: Vec<(usize, i64)>,
    /// (segment, hour resolved) of the detector's alerts.
    pub resolves: Vec<(usize, i64)>,
    /// (segment, day start hour, period days) of digest entries.
    pub digest: Vec<(usize, i64, u32)>,
    pub elapsed_s: f64,
}

/// Monday 2025-01-06 00:00 UTC, as a Unix hour.
const START_HOUR: i64 = 482_256;

struct Segs {
    keys: Vec<SegmentKey>,
    overall: usize,
    region: Vec<usize>,
    team: Vec<usize>,
    agent: Vec<usize>,
    product: Vec<usize>,
    tier: Vec<usize>,
    channel_bucket: Vec<usize>,
}

impl Segs {
    fn new(w: &World) -> Segs {
        let mut keys = vec![SegmentKey::overall()];
        let mut add = |k: SegmentKey| {
            keys.push(k);
            keys.len() - 1
        };
        let region = REGIONS
            .iter()
            .map(|r| add(SegmentKey::of(&[(REGION, r)])))
            .collect();
        let team = (0..w.teams)
            .map(|t| add(SegmentKey::of(&[(TEAM, &format!("team{t:02}"))])))
            .collect();
        let agent = (0..w.agents.len())
            .map(|a| add(SegmentKey::of(&[(AGENT, &format!("agent{a:04}"))])))
            .collect();
        let product = (0..world::PRODUCTS)
            .map(|p| add(SegmentKey::of(&[(PRODUCT, &format!("product{p}"))])))
            .collect();
        let tier = TIERS
            .iter()
            .map(|t| add(SegmentKey::of(&[(TIER, t)])))
            .collect();
        let mut channel_bucket = Vec::new();
        for c in CHANNELS {
            for b in BUCKETS {
                channel_bucket.push(add(SegmentKey::of(&[(CHANNEL, c), (BUCKET, b)])));
            }
        }
        Segs {
            keys,
            overall: 0,
            region,
            team,
            agent,
            product,
            tier,
            channel_bucket,
        }
    }

    fn of(&self, a: &Attrs) -> [usize; 7] {
        [
            self.overall,
            self.region[a[REGION] as usize],
            self.team[a[TEAM] as usize],
            self.agent[a[AGENT] as usize],
            self.product[a[PRODUCT] as usize],
            self.tier[a[TIER] as usize],
            self.channel_bucket[a[CHANNEL] as usize * 2 + a[BUCKET] as usize],
        ]
    }
}

fn schedule(
    r: &mut Rng,
    cfg: &SimConfig,
    w: &World,
    segs: &Segs,
    from: i64,
    to: i64,
) -> (Vec<InjectedDrop>, Vec<Decoy>) {
    let mut drops: Vec<InjectedDrop> = Vec::new();
    let mut busy: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
    let sizes = [5.0, 10.0, 20.0, 30.0];
    let lengths = [6, 24, 72, 168, 336];
    let mut tries = 0;
    while drops.len() < cfg.drops && tries < cfg.drops * 20 {
        tries += 1;
        let mut values = [0u16; 7];
        let x = r.f64();
        let (mask, seg) = if x < 0.4 {
            let a = r.below(w.agents.len() as u64) as usize;
            values[AGENT] = a as u16;
            (1u8 << AGENT, segs.agent[a])
        } else if x < 0.8 {
            let t = r.below(w.teams as u64) as usize;
            values[TEAM] = t as u16;
            (1 << TEAM, segs.team[t])
        } else if x < 0.88 {
            let p = r.below(world::PRODUCTS as u64) as usize;
            values[PRODUCT] = p as u16;
            (1 << PRODUCT, segs.product[p])
        } else if x < 0.92 {
            let g = r.below(5) as usize;
            values[REGION] = g as u16;
            (1 << REGION, segs.region[g])
        } else if x < 0.96 {
            let c = r.below(8) as usize;
            values[CHANNEL] = (c / 2) as u16;
            values[BUCKET] = (c % 2) as u16;
            ((1 << CHANNEL) | (1 << BUCKET), segs.channel_bucket[c])
        } else {
            let t = r.below(3) as usize;
            values[TIER] = t as u16;
            (1 << TIER, segs.tier[t])
        };
        let hours = *r.pick(&lengths);
        let start = r.range(from, (to - hours - 24).max(from + 1));
        let spans = busy.entry(seg).or_default();
        if spans
            .iter()
            .any(|&(s, e)| start < e + 72 && s < start + hours + 72)
        {
            continue;
        }
        spans.push((start, start + hours));
        drops.push(InjectedDrop {
            unit: Unit { mask, values },
            seg,
            start,
            hours,
            size: *r.pick(&sizes),
            share: HashMap::new(),
            trace: Vec::new(),
        });
    }
    let day = |r: &mut Rng| from + 24 * r.range(0, (to - from) / 24 - 1);
    let mut decoys = Vec::new();
    for _ in 0..6 {
        decoys.push(Decoy {
            kind: "holiday volume spike (x3)",
            start: day(r),
            hours: 24,
        });
    }
    decoys.push(Decoy {
        kind: "channel-mix shift (social +50%)",
        start: day(r),
        hours: 14 * 24,
    });
    for _ in 0..4 {
        decoys.push(Decoy {
            kind: "late import (30% of a product's day missing)",
            start: day(r),
            hours: 24,
        });
    }
    for _ in 0..3 {
        decoys.push(Decoy {
            kind: "stalled partition (1 of 4, 8 h)",
            start: day(r) + r.range(0, 16),
            hours: 8,
        });
    }
    (drops, decoys)
}

pub fn run(cfg: &SimConfig) -> SimResult {
    let t0 = std::time::Instant::now();
    let mut r = Rng::new(cfg.seed);
    let w = World::new(&mut r, cfg.teams, cfg.agents_per_team);
    let segs = Segs::new(&w);
    let groupings: Vec<String> = [
        "",
        "region",
        "channel,bucket",
        "team",
        "agent",
        "product",
        "tier",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut hier =
        Hierarchy::new(&groupings, &[("agent".into(), "team".into())]).expect("fixed groupings");
    for (a, ag) in w.agents.iter().enumerate() {
        hier.set_container(
            "agent",
            &segs.keys[segs.agent[a]].values[AGENT],
            &format!("team{:02}", ag.team),
        );
    }
    let mut det = Detector::new(cfg.settings.clone(), hier);
    for k in &segs.keys {
        det.register(k);
    }
    let label_id: HashMap<String, usize> = segs
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.label(), i))
        .collect();
    let h0 = START_HOUR;
    let eval_from = h0 + i64::from(cfg.warmup_days) * 24;
    let eval_to = eval_from + i64::from(cfg.days) * 24;
    let (mut drops, decoys) = schedule(&mut r, cfg, &w, &segs, eval_from, eval_to);
    let n = segs.keys.len();
    let mut aff: Vec<Vec<u64>> = vec![Vec::new(); drops.len()];
    let mut tot: Vec<Vec<u64>> = vec![Vec::new(); drops.len()];
    let mut all_in_eval = vec![0u64; n];
    let mut rule_minutes = rule::Minutes::new(eval_to - h0);
    let mut pages = Vec::new();
    let mut resolves = Vec::new();
    let mut digest = Vec::new();
    let mut team_day = vec![0.0; w.teams];
    let in_decoy = |kind: &str, hour: i64| {
        decoys
            .iter()
            .any(|d| d.kind.starts_with(kind) && hour >= d.start && hour < d.start + d.hours)
    };
    let late_product: Vec<(i64, u16)> = decoys
        .iter()
        .filter(|d| d.kind.starts_with("late import"))
        .map(|d| (d.start, (d.start % world::PRODUCTS as i64) as u16))
        .collect();
    let mut counts = vec![Counts::default(); n];
    let mut all = vec![0u64; n];
    for hour in h0..eval_to {
        if hour.rem_euclid(24) == 0 {
            for t in team_day.iter_mut() {
                *t = World::team_day_effect(&mut r);
            }
        }
        let holiday = if in_decoy("holiday", hour) { 3.0 } else { 1.0 };
        let shift = in_decoy("channel-mix", hour);
        let stalled = in_decoy("stalled", hour);
        let late: Option<u16> = late_product
            .iter()
            .find(|(s, _)| hour >= *s && hour < s + 24)
            .map(|x| x.1);
        let active: Vec<usize> = (0..drops.len())
            .filter(|&j| hour >= drops[j].start && hour < drops[j].start + drops[j].hours)
            .collect();
        for &j in &active {
            if aff[j].is_empty() {
                aff[j] = vec![0; n];
                tot[j] = vec![0; n];
            }
        }
        counts.iter_mut().for_each(|c| *c = Counts::default());
        all.iter_mut().for_each(|c| *c = 0);
        for a in 0..w.agents.len() {
            let k = poisson(&mut r, w.rate(&w.agents[a], hour) * holiday);
            for _ in 0..k {
                let at = w.attrs(&mut r, a, hour, shift);
                let mut level = w.level(&at, hour, team_day[at[TEAM] as usize]);
                let ids = segs.of(&at);
                for &j in &active {
                    if drops[j].unit.matches(&at) {
                        level -= drops[j].size;
                        for &s in &ids {
                            aff[j][s] += 1;
                        }
                    }
                }
                let class = World::class(&mut r, level);
                for &s in &ids {
                    all[s] += 1;
                }
                let missing = (stalled && r.chance(0.25))
                    || (late == Some(at[PRODUCT]) && r.chance(0.3))
                    || r.chance(0.02);
                if missing {
                    continue;
                }
                for &s in &ids {
                    let c = &mut counts[s];
                    match class {
                        0 => c.promoters += 1,
                        1 => c.passives += 1,
                        _ => c.detractors += 1,
                    }
                }
                rule_minutes.add(hour - h0, at[REGION] as usize, r.below(60) as i64, class);
            }
        }
        for &j in &active {
            for s in 0..n {
                tot[j][s] += all[s];
            }
        }
        for d in drops
            .iter_mut()
            .filter(|d| hour >= d.start && hour < d.start + 96)
        {
            d.trace.push(all[d.seg]);
        }
        if hour >= eval_from {
            for s in 0..n {
                all_in_eval[s] += all[s];
            }
        }
        let rows: Vec<(usize, Counts)> = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.n() > 0)
            .map(|(i, c)| (i, *c))
            .collect();
        let out = det.step_ids(hour, &rows);
        for e in out.alerts {
            if let Some(&s) = label_id.get(&e.segment) {
                match e.state {
                    crate::detect::AlertState::Firing => pages.push((s, hour)),
                    crate::detect::AlertState::Resolved => resolves.push((s, hour)),
                }
            }
        }
        for d in out.digest {
            if let Some(&s) = label_id.get(&d.segment) {
                digest.push((s, d.day / 3600, d.period_days));
            }
        }
    }
    if std::env::var_os("CXP_SIM_DEBUG").is_some() {
        for (i, k) in segs
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.mask != 1 << AGENT)
        {
            if let Some((b, th)) = det.baseline_of(i) {
                eprintln!(
                    "baseline {} per_hour {:.1} nps {:.1} se {:.2} phi {:.2} prior_n {:.0} thresholds {th:?}",
                    k.label(), b.per_hour, 100.0 * b.mix.mean(), 100.0 * b.se, b.phi, b.prior_n
                );
            }
        }
    }
    for (j, d) in drops.iter_mut().enumerate() {
        for s in 0..n {
            if tot[j].get(s).copied().unwrap_or(0) > 0 {
                d.share.insert(s, aff[j][s] as f64 / tot[j][s] as f64);
            }
        }
    }
    let region_segs: Vec<usize> = segs.region.clone();
    let rule_pages = rule_minutes
        .pages()
        .into_iter()
        .map(|(rg, minute)| (region_segs[rg], h0 + minute / 60))
        .collect();
    let days = f64::from(cfg.days);
    let metas = segs
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| SegMeta {
            label: k.label(),
            grouping: if k.mask == 0 {
                "overall".into()
            } else {
                k.grouping()
            },
            delta: cfg.settings.delta(k.mask),
            per_day: all_in_eval[i] as f64 / days,
        })
        .collect();
    SimResult {
        config: cfg.clone(),
        eval_from,
        eval_to,
        segs: metas,
        drops,
        decoys,
        detector_pages: pages,
        rule_pages,
        resolves,
        digest,
        elapsed_s: t0.elapsed().as_secs_f64(),
    }
}
