//! The shifting world (`simulate-detector --world shifting`): what the detector's own model
//! leaves out, layered on the default world so both can be scored side by side.
//! - Local clocks with daylight saving time (volume and the daily NPS cycle move an hour).
//! - Each team's level wanders for days (AR(1), ±2.3 points stationary) and its hours are
//!   clustered (repeat respondents and shared causes: ±3 points an hour), and its volume
//!   is not Poisson (a log-normal factor per team and hour, ±30 %).
//! - Agents are hired (new segments with no history), leave, and move between teams.
//! - Answers come 0–4 days after the contact they rate (exponential, mean 10 h): a drop
//!   in service shows in the answers that follow.
//! - Some drops are slow declines (a linear ramp to their size), some are outages of
//!   several teams at once.
//! - Decoys: regional holidays (volume × 0.4, NPS −4 for the day), campaign cohorts (3 days
//!   in which a fifth of a product's answers come from a cohort 10 points lower: a mix
//!   change of about 2 points), and response-rate cuts (3 weeks at × 0.6 in one region).

use super::world::{Agent, Attrs, World, PRODUCT, REGION, TEAM};
use super::{Decoy, InjectedDrop};
use crate::rng::Rng;
use crate::stats::sample::normal;

/// Answers can rate a contact up to this many hours back.
pub const MAX_LAG_H: i64 = 96;
const LAG_MEAN_H: f64 = 10.0;

pub struct Shifts {
    walk: Vec<f64>,
    hour_effect: Vec<f64>,
    volume: Vec<f64>,
    /// (agent, hour, new team)
    moves: Vec<(usize, i64, u16)>,
    holidays: Vec<(i64, u16)>,
    campaigns: Vec<(i64, u16)>,
    rate_cuts: Vec<(i64, u16)>,
}

impl Shifts {
    /// Staff changes, before segments are made (hires need segments): DST on, hires
    /// appended, exits set; returns the moves (agent, hour, new team).
    pub fn staff(r: &mut Rng, w: &mut World, from: i64, to: i64) -> Vec<(usize, i64, u16)> {
        w.dst = true;
        let n = w.agents.len();
        let start = from - 35 * 24;
        for _ in 0..n / 5 {
            let team = r.below(w.teams as u64) as u16;
            let level = w.team_levels()[usize::from(team)] + 6.0 * normal(r);
            w.agents.push(Agent {
                team,
                per_day: (15.0 * (0.6 * normal(r)).exp()).clamp(5.0, 50.0),
                level,
                from: r.range(from - 10 * 24, to - 30 * 24),
                to: i64::MAX,
            });
        }
        for a in 0..n {
            if r.chance(0.15) {
                w.agents[a].to = r.range(start, to);
            }
        }
        let mut moves = Vec::new();
        for a in 0..n {
            if r.chance(0.05) {
                moves.push((a, r.range(from, to), r.below(w.teams as u64) as u16));
            }
        }
        moves
    }

    /// Ramps and outages among `drops` (`team_seg`: the segment of each team) and the
    /// shifting world's decoys.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        r: &mut Rng,
        w: &World,
        moves: Vec<(usize, i64, u16)>,
        team_seg: &[usize],
        drops: &mut Vec<InjectedDrop>,
        decoys: &mut Vec<Decoy>,
        from: i64,
        to: i64,
    ) -> Shifts {
        for d in drops.iter_mut() {
            d.ramp = r.chance(0.15);
        }
        let team_drops: Vec<InjectedDrop> = drops
            .iter()
            .filter(|d| d.unit.mask == 1 << TEAM && !d.ramp)
            .cloned()
            .collect();
        for d in &team_drops {
            if !r.chance(0.25) {
                continue;
            }
            for _ in 0..1 + r.below(3) {
                let mut o = d.clone();
                let t = r.below(w.teams as u64) as u16;
                o.unit.values[TEAM] = t;
                o.seg = team_seg.get(usize::from(t)).copied().unwrap_or(d.seg);
                o.outage = true;
                drops.push(o);
            }
        }
        let day = |r: &mut Rng| from + 24 * r.range(0, (to - from) / 24 - 1);
        let mut add =
            |r: &mut Rng, kind: &'static str, hours: i64, v: &mut Vec<(i64, u16)>, k: u64| {
                let s = day(r);
                v.push((s, r.below(k) as u16));
                decoys.push(Decoy {
                    kind,
                    start: s,
                    hours,
                });
            };
        let (mut holidays, mut campaigns, mut rate_cuts) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..8 {
            add(
                r,
                "regional holiday (volume x0.4, NPS -4)",
                24,
                &mut holidays,
                5,
            );
        }
        for _ in 0..4 {
            add(
                r,
                "campaign cohort (a fifth of a product's answers 10 points lower, 3 days)",
                72,
                &mut campaigns,
                8,
            );
        }
        for _ in 0..3 {
            add(
                r,
                "response-rate cut (one region x0.6, 3 weeks)",
                21 * 24,
                &mut rate_cuts,
                5,
            );
        }
        Shifts {
            walk: vec![0.0; w.teams],
            hour_effect: vec![0.0; w.teams],
            volume: vec![1.0; w.teams],
            moves,
            holidays,
            campaigns,
            rate_cuts,
        }
    }

    /// New hourly effects (and daily steps of the walk); agents that move this hour move.
    /// Returns the agents that moved, for the detector's containers.
    pub fn hourly(&mut self, r: &mut Rng, w: &mut World, hour: i64) -> Vec<(usize, u16)> {
        for t in 0..self.walk.len() {
            if hour.rem_euclid(24) == 0 {
                self.walk[t] = 0.9 * self.walk[t] + normal(r);
            }
            self.hour_effect[t] = 3.0 * normal(r);
            self.volume[t] = (0.3 * normal(r) - 0.045).exp();
        }
        let mut moved = Vec::new();
        for &(a, at, team) in &self.moves {
            if at == hour {
                w.agents[a].team = team;
                moved.push((a, team));
            }
        }
        moved
    }

    pub fn rate_factor(&self, team: u16) -> f64 {
        self.volume.get(usize::from(team)).copied().unwrap_or(1.0)
    }

    fn during(v: &[(i64, u16)], hour: i64, hours: i64, value: u16) -> bool {
        v.iter()
            .any(|&(s, x)| x == value && hour >= s && hour < s + hours)
    }

    /// Points added to an answer's expected NPS.
    pub fn level(&self, r: &mut Rng, at: &Attrs, hour: i64) -> f64 {
        let t = usize::from(at[TEAM]);
        let mut x = self.walk.get(t).copied().unwrap_or(0.0)
            + self.hour_effect.get(t).copied().unwrap_or(0.0);
        if Self::during(&self.holidays, hour, 24, at[REGION]) {
            x -= 4.0;
        }
        if Self::during(&self.campaigns, hour, 72, at[PRODUCT]) && r.chance(0.2) {
            x -= 10.0;
        }
        x
    }

    /// Whether the answer is never given (holiday and response-rate cuts thin volume).
    pub fn thinned(&self, r: &mut Rng, at: &Attrs, hour: i64) -> bool {
        (Self::during(&self.holidays, hour, 24, at[REGION]) && r.chance(0.6))
            || (Self::during(&self.rate_cuts, hour, 21 * 24, at[REGION]) && r.chance(0.4))
    }

    /// Hours between the contact and the answer.
    pub fn lag(r: &mut Rng) -> i64 {
        let u = r.f64().max(1e-12);
        ((-u.ln() * LAG_MEAN_H) as i64).min(MAX_LAG_H)
    }
}
