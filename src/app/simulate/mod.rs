//! The simulation harness (`cx-pipeline simulate-detector`, docs/ALERTS.md): a simulated
//! year of a support organisation's answers with known drops and decoys, fed hour by hour to
//! the detector and minute by minute to the Prometheus rule it replaces, then scored against
//! the ground truth (`report`).

mod engine;
mod ideal;
pub mod oncall;
pub mod probe;
pub mod report;
pub mod rule;
pub mod shifts;
pub mod world;

pub use engine::run;

use crate::detect::{Params, SegmentKey};
use crate::rng::Rng;
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
    /// The shifting world (`shifts`) instead of the detector's own model.
    pub shifting: bool,
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
            shifting: false,
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
    /// A slow decline: the size is reached linearly over the drop's hours.
    pub ramp: bool,
    /// One of several teams dropping at once (a copy of another drop).
    pub outage: bool,
}

impl InjectedDrop {
    /// Share of the size taken off an answer rating a contact at `hour` (0 outside).
    pub fn fraction(&self, hour: i64) -> f64 {
        if hour < self.start || hour >= self.start + self.hours {
            return 0.0;
        }
        if self.ramp {
            ((hour - self.start + 1) as f64 / self.hours as f64).min(1.0)
        } else {
            1.0
        }
    }
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
    /// (segment, hour fired) of the ideal reference, one per drop it found.
    pub ideal_pages: Vec<(usize, i64)>,
    /// (segment, hour fired) of the detector's alerts and of today's rule's pages.
    pub detector_pages: Vec<(usize, i64)>,
    /// The detector's notifications: (segment of the event, hour, severity, incident id).
    pub notifications: Vec<(usize, i64, crate::detect::Severity, String)>,
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
    /// The answers each segment covers, by id.
    units: Vec<Unit>,
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
        let mut units = vec![Unit {
            mask: 0,
            values: [0; 7],
        }];
        // A segment of (dimension, value index, value name) pairs.
        let mut add = |pairs: &[(usize, u16, &str)]| {
            let named: Vec<(usize, &str)> = pairs.iter().map(|&(d, _, n)| (d, n)).collect();
            let mut values = [0u16; 7];
            for &(d, v, _) in pairs {
                values[d] = v;
            }
            keys.push(SegmentKey::of(&named));
            units.push(Unit {
                mask: pairs.iter().fold(0, |m, &(d, _, _)| m | (1 << d)),
                values,
            });
            keys.len() - 1
        };
        let region = (0..REGIONS.len())
            .map(|r| add(&[(REGION, r as u16, REGIONS[r])]))
            .collect();
        let team = (0..w.teams)
            .map(|t| add(&[(TEAM, t as u16, &format!("team{t:02}"))]))
            .collect();
        let agent = (0..w.agents.len())
            .map(|a| add(&[(AGENT, a as u16, &format!("agent{a:04}"))]))
            .collect();
        let product = (0..world::PRODUCTS)
            .map(|p| add(&[(PRODUCT, p as u16, &format!("product{p}"))]))
            .collect();
        let tier = (0..TIERS.len())
            .map(|t| add(&[(TIER, t as u16, TIERS[t])]))
            .collect();
        let mut channel_bucket = Vec::new();
        for (c, cn) in CHANNELS.iter().enumerate() {
            for (b, bn) in BUCKETS.iter().enumerate() {
                channel_bucket.push(add(&[(CHANNEL, c as u16, cn), (BUCKET, b as u16, bn)]));
            }
        }
        Segs {
            keys,
            units,
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
            ramp: false,
            outage: false,
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
