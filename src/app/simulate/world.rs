//! The simulated company: agents in teams with their own NPS levels and heavy-tailed
//! volumes, answers spread over regions, products, tiers, channels and buckets with effects
//! of their own, daily and weekly cycles in both volume and NPS, good and bad days per team;
//! then injected drops (the ground truth) and decoys that must not page.

use crate::detect::baseline::hour_of_week;

use crate::rng::Rng;
use crate::stats::sample::{draw_class, mix_for, normal};

pub const REGIONS: [&str; 5] = ["emea", "na", "latam", "apac", "anz"];
const REGION_SHARE: [f64; 5] = [0.35, 0.25, 0.2, 0.12, 0.08];
/// Offset of each region's local time from UTC, hours.
const REGION_TZ: [i64; 5] = [1, -5, -3, 8, 10];
pub const CHANNELS: [&str; 4] = ["PHONE", "CHAT", "EMAIL", "SOCIAL"];
const CHANNEL_SHARE: [f64; 4] = [0.4, 0.3, 0.2, 0.1];
/// During the channel-mix decoy, social takes half again its usual share from phone.
const CHANNEL_SHARE_SHIFTED: [f64; 4] = [0.35, 0.3, 0.2, 0.15];
const CHANNEL_EFFECT: [f64; 4] = [2.0, 1.0, -2.0, -6.0];
pub const BUCKETS: [&str; 2] = ["PRE_SALES", "POST_SALES"];
const BUCKET_SHARE: [f64; 2] = [0.35, 0.65];
const BUCKET_EFFECT: [f64; 2] = [3.0, -1.5];
pub const TIERS: [&str; 3] = ["consumer", "smb", "enterprise"];
const TIER_SHARE: [f64; 3] = [0.6, 0.3, 0.1];
const TIER_EFFECT: [f64; 3] = [0.0, 2.0, -2.0];
pub const PRODUCTS: usize = 8;

/// Dimension indexes as in `model::DIMENSIONS`.
pub const REGION: usize = 0;
pub const CHANNEL: usize = 1;
pub const TEAM: usize = 2;
pub const AGENT: usize = 3;
pub const PRODUCT: usize = 4;
pub const TIER: usize = 5;
pub const BUCKET: usize = 6;

/// One answer's attributes as value indexes per dimension.
pub type Attrs = [u16; 7];

pub struct Agent {
    pub team: u16,
    pub per_day: f64,
    pub level: f64,
    /// Hours the agent answers in: hired at `from`, gone at `to`.
    pub from: i64,
    pub to: i64,
}

pub struct World {
    pub teams: usize,
    pub agents: Vec<Agent>,
    team_level: Vec<f64>,
    product_share: Vec<f64>,
    product_effect: Vec<f64>,
    region_effect: [f64; 5],
    /// Volume weight of each region by UTC hour of day (local business hours).
    region_by_hour: [[f64; 5]; 24],
    volume_by_hour: [f64; 24],
    /// Local clocks follow daylight saving time (the shifting world).
    pub dst: bool,
}

fn pick(r: &mut Rng, shares: &[f64]) -> usize {
    let total: f64 = shares.iter().sum();
    let mut x = r.f64() * total;
    for (i, s) in shares.iter().enumerate() {
        if x < *s {
            return i;
        }
        x -= s;
    }
    shares.len() - 1
}

fn local_activity(local_hour: i64) -> f64 {
    let h = local_hour.rem_euclid(24) as f64;
    // Quiet at night, busiest early afternoon.
    0.15 + (std::f64::consts::PI * (h - 7.0) / 14.0).sin().max(0.0)
}

impl World {
    pub fn new(r: &mut Rng, teams: usize, agents_per_team: f64) -> World {
        let team_level: Vec<f64> = (0..teams).map(|_| 30.0 + 8.0 * normal(r)).collect();
        let mut agents = Vec::new();
        for (t, level) in team_level.iter().enumerate() {
            // Team sizes from ~5 to ~60, heavy-tailed.
            let size = (agents_per_team * (0.7 * normal(r) - 0.25).exp()).clamp(4.0, 70.0) as usize;
            for _ in 0..size {
                agents.push(Agent {
                    team: t as u16,
                    per_day: (15.0 * (0.6 * normal(r)).exp()).clamp(5.0, 50.0),
                    level: level + 6.0 * normal(r),
                    from: i64::MIN,
                    to: i64::MAX,
                });
            }
        }
        let zipf: Vec<f64> = (1..=PRODUCTS).map(|k| 1.0 / k as f64).collect();
        let zs: f64 = zipf.iter().sum();
        let mut region_by_hour = [[0.0; 5]; 24];
        let mut volume_by_hour = [0.0; 24];
        for h in 0..24 {
            for rg in 0..5 {
                region_by_hour[h][rg] = REGION_SHARE[rg] * local_activity(h as i64 + REGION_TZ[rg]);
            }
            volume_by_hour[h] = region_by_hour[h].iter().sum();
        }
        let mean: f64 = volume_by_hour.iter().sum::<f64>() / 24.0;
        for v in &mut volume_by_hour {
            *v /= mean;
        }
        World {
            teams,
            agents,
            team_level,
            product_share: zipf.iter().map(|z| z / zs).collect(),
            product_effect: (0..PRODUCTS).map(|_| 4.0 * normal(r)).collect(),
            region_effect: std::array::from_fn(|_| 3.0 * normal(r)),
            region_by_hour,
            volume_by_hour,
            dst: false,
        }
    }

    /// A region's offset from UTC at `hour`: fixed, or with daylight saving time (EU from
    /// late March to late October, North America mid-March to early November, Australia
    /// and New Zealand early October to early April), by day of the year.
    pub fn offset(&self, rg: usize, hour: i64) -> i64 {
        let base = REGION_TZ[rg];
        if !self.dst {
            return base;
        }
        // 2025-01-01 is day 20,089 of the Unix epoch; the year's day, 0-based.
        let day = (hour.div_euclid(24) - 20_089).rem_euclid(365);
        let summer = match rg {
            0 => (86..299).contains(&day),
            1 => (68..306).contains(&day),
            4 => !(95..277).contains(&day),
            _ => false,
        };
        base + i64::from(summer)
    }

    /// Each region's share of the answers at `hour` (local business hours).
    pub fn region_weights(&self, hour: i64) -> [f64; 5] {
        if !self.dst {
            return self.region_by_hour[hour.rem_euclid(24) as usize];
        }
        std::array::from_fn(|rg| REGION_SHARE[rg] * local_activity(hour + self.offset(rg, hour)))
    }

    pub fn team_levels(&self) -> &[f64] {
        &self.team_level
    }

    /// Expected answers of an agent in `hour`, before holidays.
    pub fn rate(&self, agent: &Agent, hour: i64) -> f64 {
        let how = hour_of_week(hour);
        let weekday = if how / 24 >= 5 { 0.6 } else { 1.12 };
        agent.per_day / 24.0 * self.volume_by_hour[hour.rem_euclid(24) as usize] * weekday
    }

    /// Draws the attributes of one answer handled by `agent` in `hour`.
    pub fn attrs(&self, r: &mut Rng, agent: usize, regions: &[f64; 5], mix_shift: bool) -> Attrs {
        let ch = if mix_shift {
            &CHANNEL_SHARE_SHIFTED
        } else {
            &CHANNEL_SHARE
        };
        [
            pick(r, regions) as u16,
            pick(r, ch) as u16,
            self.agents[agent].team,
            agent as u16,
            pick(r, &self.product_share) as u16,
            pick(r, &TIER_SHARE) as u16,
            pick(r, &BUCKET_SHARE) as u16,
        ]
    }

    /// The answer's expected NPS (points) before drops: levels, effects, daily and weekly
    /// cycles in the region's local time, and the team's day effect.
    pub fn level(&self, a: &Attrs, hour: i64, team_day: f64) -> f64 {
        let rg = a[REGION] as usize;
        let tz = self.offset(rg, hour);
        let local = (hour + tz).rem_euclid(24) as f64;
        let daily = 5.0 * (std::f64::consts::TAU * (local - 9.0) / 24.0).sin();
        let how = hour_of_week(hour + tz);
        let weekly = match how / 24 {
            0 => -2.0,
            5 | 6 => 3.0,
            _ => 0.0,
        };
        self.agents[a[AGENT] as usize].level
            + CHANNEL_EFFECT[a[CHANNEL] as usize]
            + BUCKET_EFFECT[a[BUCKET] as usize]
            + TIER_EFFECT[a[TIER] as usize]
            + self.product_effect[a[PRODUCT] as usize]
            + self.region_effect[rg]
            + daily
            + weekly
            + team_day
    }

    /// Class of one answer with expected NPS `nps` (points): 0 promoter, 1 passive, 2 detractor.
    pub fn class(r: &mut Rng, nps: f64) -> usize {
        draw_class(r, &mix_for(nps))
    }

    pub fn team_day_effect(r: &mut Rng) -> f64 {
        2.0 * normal(r)
    }

    pub fn product_share(&self) -> &[f64] {
        &self.product_share
    }
}
