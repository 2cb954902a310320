//! The simulation itself: every hour, every agent's answers drawn from the world, the drops
//! and decoys applied, the counts fed to the detector and the minute tallies to the old
//! rule. The random draws happen in one fixed order, so a seed always gives the same year.

use super::world::{self, World, AGENT, PRODUCT, REGION, TEAM};
use super::{
    rule, schedule, shifts, Decoy, InjectedDrop, SegMeta, Segs, SimConfig, SimResult, START_HOUR,
};
use crate::detect::{AlertState, Counts, Detector, Hierarchy};
use crate::rng::Rng;
use crate::stats::sample::poisson;
use std::collections::HashMap;

/// Hours of answers kept for counting what two alerting segments share.
const RECENT_HOURS: usize = 14 * 24;

/// The detector over every simulated segment, agents nested in their teams.
fn detector(cfg: &SimConfig, w: &World, segs: &Segs) -> Detector {
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
    det
}

/// What holds during one hour: decoys in force and the drops active.
struct Hour {
    holiday: f64,
    shift: bool,
    stalled: bool,
    /// The product whose late import misses answers this hour.
    late: Option<u16>,
    active: Vec<usize>,
}

/// The year in progress: the ground truth and what the detector and the rule said.
struct Sim<'a> {
    cfg: &'a SimConfig,
    r: Rng,
    w: World,
    segs: Segs,
    det: Detector,
    drops: Vec<InjectedDrop>,
    decoys: Vec<Decoy>,
    late_product: Vec<(i64, u16)>,
    label_id: HashMap<String, usize>,
    /// Per drop and segment: answers the drop affected, and all answers while it lasted.
    aff: Vec<Vec<f64>>,
    shifts: Option<shifts::Shifts>,
    /// Per drop: the ideal reference, a CUSUM that knows the true levels and the drop.
    ideal: Vec<super::ideal::Ideal>,
    tot: Vec<Vec<u64>>,
    all_in_eval: Vec<u64>,
    rule_minutes: rule::Minutes,
    pages: Vec<(usize, i64)>,
    notifications: Vec<(usize, i64, crate::detect::Severity, String)>,
    resolves: Vec<(usize, i64)>,
    /// Delivered answers of the last `RECENT_HOURS`, by hour: what `survey_facts` would
    /// give the incident rule.
    recent: Vec<Vec<(world::Attrs, u8)>>,
    digest: Vec<(usize, i64, u32)>,
    team_day: Vec<f64>,
    /// This hour's delivered counts and all answers (delivered or not), per segment.
    counts: Vec<Counts>,
    all: Vec<u64>,
    eval_from: i64,
    eval_to: i64,
}

impl Sim<'_> {
    fn in_decoy(&self, kind: &str, hour: i64) -> bool {
        self.decoys
            .iter()
            .any(|d| d.kind.starts_with(kind) && hour >= d.start && hour < d.start + d.hours)
    }

    fn conditions(&mut self, hour: i64) -> Hour {
        // With answers lagging their contacts, a drop shows for up to MAX_LAG_H after it.
        let tail = if self.shifts.is_some() {
            shifts::MAX_LAG_H
        } else {
            0
        };
        let active: Vec<usize> = (0..self.drops.len())
            .filter(|&j| {
                hour >= self.drops[j].start
                    && hour < self.drops[j].start + self.drops[j].hours + tail
            })
            .collect();
        let n = self.segs.keys.len();
        for &j in &active {
            if self.aff[j].is_empty() {
                self.aff[j] = vec![0.0; n];
                self.tot[j] = vec![0; n];
            }
        }
        Hour {
            holiday: if self.in_decoy("holiday", hour) {
                3.0
            } else {
                1.0
            },
            shift: self.in_decoy("channel-mix", hour),
            stalled: self.in_decoy("stalled", hour),
            late: self
                .late_product
                .iter()
                .find(|(s, _)| hour >= *s && hour < s + 24)
                .map(|x| x.1),
            active,
        }
    }

    /// Draws every agent's answers for the hour into `counts` and `all`.
    fn answers(&mut self, hour: i64, c: &Hour) {
        self.counts.iter_mut().for_each(|x| *x = Counts::default());
        self.all.iter_mut().for_each(|x| *x = 0);
        let slot = hour.rem_euclid(RECENT_HOURS as i64) as usize;
        self.recent[slot].clear();
        let regions = self.w.region_weights(hour);
        for a in 0..self.w.agents.len() {
            let ag = &self.w.agents[a];
            if hour < ag.from || hour >= ag.to {
                continue;
            }
            let volume = self.shifts.as_ref().map_or(1.0, |s| s.rate_factor(ag.team));
            let k = poisson(&mut self.r, self.w.rate(ag, hour) * c.holiday * volume);
            for _ in 0..k {
                let at = self.w.attrs(&mut self.r, a, &regions, c.shift);
                let mut level = self.w.level(&at, hour, self.team_day[at[TEAM] as usize]);
                let mut contact = hour;
                if let Some(sh) = &self.shifts {
                    if sh.thinned(&mut self.r, &at, hour) {
                        continue;
                    }
                    level += sh.level(&mut self.r, &at, hour);
                    contact = hour - shifts::Shifts::lag(&mut self.r);
                }
                let ids = self.segs.of(&at);
                let before = level;
                let mut hit: Vec<(usize, f64)> = Vec::new();
                for &j in &c.active {
                    let f = self.drops[j].fraction(contact);
                    if f > 0.0 && self.drops[j].unit.matches(&at) {
                        level -= self.drops[j].size * f;
                        hit.push((j, f));
                        for &s in &ids {
                            self.aff[j][s] += f;
                        }
                    }
                }
                let class = World::class(&mut self.r, level);
                for (j, f) in hit {
                    self.ideal[j].answer(before, self.drops[j].size * f, class);
                }
                for &s in &ids {
                    self.all[s] += 1;
                }
                let missing = (c.stalled && self.r.chance(0.25))
                    || (c.late == Some(at[PRODUCT]) && self.r.chance(0.3))
                    || self.r.chance(0.02);
                if missing {
                    continue;
                }
                self.recent[slot].push((at, class as u8));
                for &s in &ids {
                    let x = &mut self.counts[s];
                    match class {
                        0 => x.promoters += 1,
                        1 => x.passives += 1,
                        _ => x.detractors += 1,
                    }
                }
                let minute = self.r.below(60) as i64;
                self.rule_minutes
                    .add(hour - START_HOUR, at[REGION] as usize, minute, class);
            }
        }
    }

    /// The ground truth's bookkeeping for the hour, then the detector's step.
    fn record(&mut self, hour: i64, c: &Hour) {
        let n = self.segs.keys.len();
        for (j, d) in self.drops.iter().enumerate() {
            if hour >= d.start && hour < d.start + d.hours + 24 {
                let arl = self.det.single_arl(d.seg);
                self.ideal[j].hour(hour, arl);
            }
        }
        for &j in &c.active {
            for s in 0..n {
                self.tot[j][s] += self.all[s];
            }
        }
        for d in self
            .drops
            .iter_mut()
            .filter(|d| hour >= d.start && hour < d.start + 96)
        {
            d.trace.push(self.all[d.seg]);
        }
        if hour >= self.eval_from {
            for s in 0..n {
                self.all_in_eval[s] += self.all[s];
            }
        }
        let rows: Vec<(usize, Counts)> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.n() > 0)
            .map(|(i, c)| (i, *c))
            .collect();
        let mut out = self.det.step_ids(hour, &rows);
        let overlaps: Vec<_> = self
            .det
            .overlap_requests(&out)
            .into_iter()
            .map(|r| {
                let c = self.shared(&r, hour);
                (r, c)
            })
            .collect();
        self.det.group(&mut out, &overlaps);
        for e in out.alerts {
            if let Some(&s) = self.label_id.get(&e.segment) {
                match e.state {
                    AlertState::Firing => self.pages.push((s, hour)),
                    AlertState::Resolved => self.resolves.push((s, hour)),
                    AlertState::Updated => {}
                }
                if e.notify {
                    self.notifications
                        .push((s, hour, e.severity, e.incident_id));
                }
            }
        }
        for d in out.digest {
            if let Some(&s) = self.label_id.get(&d.segment) {
                self.digest.push((s, d.day / 3600, d.period_days));
            }
        }
    }

    /// Answers of both segments of `r` over its hours (those still kept).
    fn shared(&self, r: &crate::detect::detector::OverlapRequest, hour: i64) -> Counts {
        let unit = |k: &crate::detect::SegmentKey| {
            self.label_id.get(&k.label()).map(|&i| self.segs.units[i])
        };
        let (Some(x), Some(a)) = (unit(&r.x), unit(&r.a)) else {
            return Counts::default();
        };
        let mut c = Counts::default();
        for h in r.from_hour.max(hour + 1 - RECENT_HOURS as i64)..r.to_hour.min(hour + 1) {
            for (at, class) in &self.recent[h.rem_euclid(RECENT_HOURS as i64) as usize] {
                if x.matches(at) && a.matches(at) {
                    match class {
                        0 => c.promoters += 1,
                        1 => c.passives += 1,
                        _ => c.detractors += 1,
                    }
                }
            }
        }
        c
    }

    fn hour(&mut self, hour: i64) {
        if let Some(sh) = self.shifts.as_mut() {
            for (a, team) in sh.hourly(&mut self.r, &mut self.w, hour) {
                let agent = self.segs.keys[self.segs.agent[a]].values[AGENT].clone();
                self.det
                    .hierarchy_mut()
                    .set_container("agent", &agent, &format!("team{team:02}"));
            }
        }
        if hour.rem_euclid(24) == 0 {
            for t in 0..self.team_day.len() {
                self.team_day[t] = World::team_day_effect(&mut self.r);
            }
        }
        let c = self.conditions(hour);
        self.answers(hour, &c);
        self.record(hour, &c);
    }

    fn debug_baselines(&self) {
        for (i, k) in self
            .segs
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.mask != 1 << AGENT)
        {
            if let Some((b, th)) = self.det.baseline_of(i) {
                eprintln!(
                    "baseline {} per_hour {:.1} nps {:.1} se {:.2} phi {:.2} prior_n {:.0} thresholds {th:?}",
                    k.label(), b.per_hour, 100.0 * b.mix.mean(), 100.0 * b.se, b.phi, b.prior_n
                );
            }
        }
    }

    fn finish(mut self, elapsed_s: f64) -> SimResult {
        let n = self.segs.keys.len();
        for (j, d) in self.drops.iter_mut().enumerate() {
            for s in 0..n {
                if self.tot[j].get(s).copied().unwrap_or(0) > 0 {
                    d.share.insert(s, self.aff[j][s] / self.tot[j][s] as f64);
                }
            }
        }
        let region_segs: Vec<usize> = self.segs.region.clone();
        let rule_pages = self
            .rule_minutes
            .pages()
            .into_iter()
            .map(|(rg, minute)| (region_segs[rg], START_HOUR + minute / 60))
            .collect();
        let days = f64::from(self.cfg.days);
        let metas = self
            .segs
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
                delta: self.cfg.settings.delta(k.mask),
                per_day: self.all_in_eval[i] as f64 / days,
            })
            .collect();
        let ideal_pages = self
            .drops
            .iter()
            .zip(&self.ideal)
            .filter_map(|(d, i)| i.fired.map(|h| (d.seg, h)))
            .collect();
        SimResult {
            config: self.cfg.clone(),
            eval_from: self.eval_from,
            eval_to: self.eval_to,
            segs: metas,
            drops: self.drops,
            decoys: self.decoys,
            ideal_pages,
            detector_pages: self.pages,
            notifications: self.notifications,
            rule_pages,
            resolves: self.resolves,
            digest: self.digest,
            elapsed_s,
        }
    }
}

pub fn run(cfg: &SimConfig) -> SimResult {
    let t0 = std::time::Instant::now();
    let mut r = Rng::new(cfg.seed);
    let mut w = World::new(&mut r, cfg.teams, cfg.agents_per_team);
    let eval_from = START_HOUR + i64::from(cfg.warmup_days) * 24;
    let eval_to = eval_from + i64::from(cfg.days) * 24;
    // The shifting world draws from its own stream, so the default world stays as it was.
    let mut r2 = Rng::new(cfg.seed ^ 0x5348_4946_5453);
    let moves = cfg
        .shifting
        .then(|| shifts::Shifts::staff(&mut r2, &mut w, eval_from, eval_to));
    let segs = Segs::new(&w);
    let det = detector(cfg, &w, &segs);
    let label_id: HashMap<String, usize> = segs
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.label(), i))
        .collect();
    let (mut drops, mut decoys) = schedule(&mut r, cfg, &w, &segs, eval_from, eval_to);
    let shifts = moves.map(|m| {
        shifts::Shifts::new(
            &mut r2,
            &w,
            m,
            &segs.team,
            &mut drops,
            &mut decoys,
            eval_from,
            eval_to,
        )
    });
    let n = segs.keys.len();
    let late_product: Vec<(i64, u16)> = decoys
        .iter()
        .filter(|d| d.kind.starts_with("late import"))
        .map(|d| (d.start, (d.start % world::PRODUCTS as i64) as u16))
        .collect();
    let mut sim = Sim {
        cfg,
        shifts,
        ideal: vec![super::ideal::Ideal::default(); drops.len()],
        aff: vec![Vec::new(); drops.len()],
        tot: vec![Vec::new(); drops.len()],
        all_in_eval: vec![0; n],
        rule_minutes: rule::Minutes::new(eval_to - START_HOUR),
        pages: Vec::new(),
        notifications: Vec::new(),
        resolves: Vec::new(),
        recent: vec![Vec::new(); RECENT_HOURS],
        digest: Vec::new(),
        team_day: vec![0.0; w.teams],
        counts: vec![Counts::default(); n],
        all: vec![0; n],
        r,
        w,
        segs,
        det,
        drops,
        decoys,
        late_product,
        label_id,
        eval_from,
        eval_to,
    };
    for hour in START_HOUR..eval_to {
        sim.hour(hour);
    }
    if std::env::var_os("CXP_SIM_DEBUG").is_some() {
        sim.debug_baselines();
    }
    sim.finish(t0.elapsed().as_secs_f64())
}
