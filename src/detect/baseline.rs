//! A segment's expected NPS for any hour: its trailing history, shrunk toward its parent when
//! small (empirical Bayes), plus an hour-of-day and day-of-week profile, plus how much more its
//! hours vary than independent answers would (over-dispersion). Recomputed once a day from
//! the hours the [`History`] still holds, skipping hours that were part of an alert.

use crate::stats::{tilt, Counts, Mix};

/// Hour of the week, Monday 00:00 UTC = 0 (hour 0 of the Unix epoch was a Thursday).
pub fn hour_of_week(hour: i64) -> usize {
    (hour + 72).rem_euclid(168) as usize
}

/// Hourly class counts of one segment for the last `len` hours, and which hours are excluded
/// from baselines (they belonged to an alert).
#[derive(Clone, Debug)]
pub struct History {
    counts: Vec<[u32; 3]>,
    excluded: Vec<bool>,
}

impl History {
    pub fn new(len: usize) -> Self {
        History {
            counts: vec![[0; 3]; len],
            excluded: vec![false; len],
        }
    }

    fn slot(&self, hour: i64) -> usize {
        hour.rem_euclid(self.counts.len() as i64) as usize
    }

    pub fn set(&mut self, hour: i64, c: &Counts) {
        let s = self.slot(hour);
        let cap = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        self.counts[s] = [cap(c.promoters), cap(c.passives), cap(c.detractors)];
        self.excluded[s] = false;
    }

    pub fn get(&self, hour: i64) -> Counts {
        let [p, q, d] = self.counts[self.slot(hour)];
        Counts::new(u64::from(p), u64::from(q), u64::from(d))
    }

    pub fn exclude(&mut self, hour: i64) {
        let s = self.slot(hour);
        self.excluded[s] = true;
    }

    /// Takes an hour back into baselines (an accepted new level is the new normal).
    pub fn include(&mut self, hour: i64) {
        let s = self.slot(hour);
        self.excluded[s] = false;
    }

    pub fn is_excluded(&self, hour: i64) -> bool {
        self.excluded[self.slot(hour)]
    }

    /// Sum of `[from, to)`, excluded hours included (what an alert reports).
    pub fn sum(&self, from: i64, to: i64) -> Counts {
        let mut c = Counts::default();
        for h in from..to {
            c.add(&self.get(h));
        }
        c
    }
}

/// What a baseline window holds before any modelling.
#[derive(Clone, Debug, Default)]
pub struct Raw {
    pub counts: Counts,
    pub hours: u32,
    pub hod: [Counts; 24],
    pub dow: [Counts; 7],
}

pub fn raw(h: &History, from: i64, to: i64) -> Raw {
    let mut r = Raw::default();
    for hour in from..to {
        if h.is_excluded(hour) {
            continue;
        }
        let c = h.get(hour);
        r.hours += 1;
        let how = hour_of_week(hour);
        r.counts.add(&c);
        r.hod[how % 24].add(&c);
        r.dow[how / 24].add(&c);
    }
    r
}

/// Pseudo-answers behind a parent's seasonal deviation when shrinking a child's toward it:
/// the answer variance (~0.6) over a plausible spread of seasonal effects (~3 points)².
const SEASON_PRIOR_N: f64 = 600.0;

#[derive(Clone, Debug)]
pub struct Baseline {
    /// Average class mix over the window, shrunk toward the parent's.
    pub mix: Mix,
    /// Pseudo-answers the parent contributed.
    pub prior_n: f64,
    /// Standard error of the mean score (NPS / 100).
    pub se: f64,
    /// Additive deviation of the mean score per hour of the week.
    pub season: Box<[f64; 168]>,
    /// Variance inflation of hourly and daily sums over independent answers (>= 1).
    pub phi: f64,
    /// Answers per hour in the window.
    pub per_hour: f64,
    /// Volume relative to the mean by hour of day and by day of week (1 = average).
    pub vol_hod: [f64; 24],
    pub vol_dow: [f64; 7],
    pub raw: Counts,
}

impl Baseline {
    /// Expected mean score at `hour`, lowered by `margin` standard errors of the baseline.
    pub fn expected(&self, hour: i64, margin: f64) -> f64 {
        (self.mix.mean() + self.season[hour_of_week(hour)] - margin * self.se).clamp(-0.99, 0.99)
    }

    /// Variance (mean score²) of the seasonal profile's error over a period of `days`: each
    /// day-of-week deviation is estimated from a seventh of the window (plus the parent's
    /// pseudo-answers), and a period's error averages over its days.
    pub fn season_var(&self, days: u32) -> f64 {
        let per_dow = self.raw.n() as f64 / 7.0 + SEASON_PRIOR_N;
        self.mix.variance() / per_dow / f64::from(days.clamp(1, 7))
    }

    /// Answers expected in `hour` from the window's volume and its daily and weekly shape.
    pub fn expected_volume(&self, hour: i64) -> f64 {
        let how = hour_of_week(hour);
        self.per_hour * self.vol_hod[how % 24] * self.vol_dow[how / 24]
    }

    /// The mix expected at `hour` (the null hypothesis).
    pub fn null_mix(&self, hour: i64, margin: f64) -> Mix {
        tilt(self.mix, self.expected(hour, margin)).0
    }

    /// The first stage: mix and standard error, given the parent's mix and how many
    /// pseudo-answers it is worth (0 for a segment without parent).
    pub fn fit(raw: &Raw, prior: Option<(&Baseline, f64)>) -> Baseline {
        let (prior_mix, prior_n) = match prior {
            Some((p, k)) => (p.mix, k),
            None => (
                Mix {
                    p: 1.0 / 3.0,
                    q: 1.0 / 3.0,
                    d: 1.0 / 3.0,
                },
                3.0,
            ),
        };
        let mix = Mix::shrunk(&raw.counts, prior_mix, prior_n);
        let n = raw.counts.n() as f64;
        let se = (mix.variance() / (n + prior_n)).sqrt();
        let mean = raw.counts.nps().map_or(mix.mean(), |x| x / 100.0);
        let parent_season = prior.map(|(p, _)| p.season.clone());
        let shrink = |c: &Counts, parent_dev: f64| {
            let k = c.n() as f64;
            let own = c.nps().map_or(0.0, |x| x / 100.0 - mean);
            (k * own + SEASON_PRIOR_N * parent_dev) / (k + SEASON_PRIOR_N)
        };
        // The parent's profile split back into its hour-of-day and day-of-week parts.
        let (p_hod, p_dow) = match &parent_season {
            Some(s) => split(s),
            None => ([0.0; 24], [0.0; 7]),
        };
        let hod: Vec<f64> = (0..24).map(|i| shrink(&raw.hod[i], p_hod[i])).collect();
        let dow: Vec<f64> = (0..7).map(|i| shrink(&raw.dow[i], p_dow[i])).collect();
        let mut season = Box::new([0.0; 168]);
        for (how, s) in season.iter_mut().enumerate() {
            *s = hod[how % 24] + dow[how / 24];
        }
        let total = raw.counts.n().max(1) as f64;
        Baseline {
            vol_hod: std::array::from_fn(|i| raw.hod[i].n() as f64 * 24.0 / total),
            vol_dow: std::array::from_fn(|i| raw.dow[i].n() as f64 * 7.0 / total),
            mix,
            prior_n,
            se,
            season,
            phi: 1.0,
            per_hour: if raw.hours > 0 {
                n / f64::from(raw.hours)
            } else {
                0.0
            },
            raw: raw.counts,
        }
    }

    /// The second stage: over-dispersion from the same window, now that the expected mean
    /// of every hour is known: the mean square of standardized residuals per hour and per
    /// day (a day catches effects that last hours), with one degree of freedom for the
    /// fitted level. Unlike successive differences, this keeps multi-day wander in: the
    /// CUSUM adds evidence over days, so day-to-day wander is exactly the noise its
    /// threshold must allow for. Hours that belonged to an alert are already excluded. The
    /// baseline's standard error grows with it, so every interval shown and the margin
    /// carry it too.
    pub fn fit_dispersion(&mut self, h: &History, from: i64, to: i64) {
        let var = self.mix.variance();
        let mut hours = Vec::new();
        let mut days = Vec::new();
        let (mut day_obs, mut day_exp, mut day_n) = (0.0, 0.0, 0.0);
        for hour in from..=to {
            if hour.rem_euclid(24) == 0 || hour == to {
                if day_n > 0.0 {
                    days.push((day_obs - day_exp) / (day_n * var).sqrt());
                }
                (day_obs, day_exp, day_n) = (0.0, 0.0, 0.0);
            }
            if hour == to || h.is_excluded(hour) {
                continue;
            }
            let c = h.get(hour);
            let n = c.n() as f64;
            if n == 0.0 {
                continue;
            }
            let exp = n * self.expected(hour, 0.0);
            hours.push((c.score_sum() - exp) / (n * var).sqrt());
            day_obs += c.score_sum();
            day_exp += exp;
            day_n += n;
        }
        self.phi = dispersion(&hours, 24)
            .max(dispersion(&days, 7))
            .max(long_run(&days))
            .max(1.0);
        self.se *= self.phi.sqrt();
    }
}

/// Mean square of standardized residuals (each χ²(1) × φ when the model holds), with one
/// degree of freedom taken by the fitted level; 1 with fewer than `min` terms.
fn dispersion(z: &[f64], min: usize) -> f64 {
    if z.len() < min.max(2) {
        return 1.0;
    }
    z.iter().map(|x| x * x).sum::<f64>() / (z.len() - 1) as f64
}

/// Days of autocovariance in the long-run estimate: the CUSUM of a mid-sized segment
/// gathers its evidence over one to three days.
const LONG_RUN_LAGS: usize = 3;

/// Long-run variance of the daily residuals (Newey–West, Bartlett weights over
/// [`LONG_RUN_LAGS`] days): a level that wanders for days makes a three-day sum vary more
/// than three independent days would, and a test adding evidence over days must allow for
/// it. 1 with fewer than two weeks of days.
fn long_run(z: &[f64]) -> f64 {
    let n = z.len();
    if n < 14 {
        return 1.0;
    }
    let mean = z.iter().sum::<f64>() / n as f64;
    let cov = |k: usize| -> f64 {
        (k..n)
            .map(|i| (z[i] - mean) * (z[i - k] - mean))
            .sum::<f64>()
            / (n - 1) as f64
    };
    let mut v = cov(0);
    for k in 1..=LONG_RUN_LAGS {
        v += 2.0 * (1.0 - k as f64 / (LONG_RUN_LAGS + 1) as f64) * cov(k);
    }
    v
}

/// Hour-of-day and day-of-week means of a 168-hour profile.
fn split(season: &[f64; 168]) -> ([f64; 24], [f64; 7]) {
    let mut hod = [0.0; 24];
    let mut dow = [0.0; 7];
    for (how, s) in season.iter().enumerate() {
        hod[how % 24] += s / 7.0;
        dow[how / 24] += s / 24.0;
    }
    let mean = hod.iter().sum::<f64>() / 24.0;
    for d in &mut dow {
        *d -= mean;
    }
    (hod, dow)
}

/// How many pseudo-answers a parent's mix is worth to each of a set of siblings: the answer
/// variance over the spread of the siblings' true means (method of moments: the observed
/// spread minus what sampling alone explains), with the spread floored at 2 NPS points.
pub fn prior_strength(parent: &Baseline, children: &[&Raw]) -> f64 {
    let var = parent.mix.variance();
    let centre = parent.mix.mean();
    let (mut spread, mut noise, mut k) = (0.0, 0.0, 0.0);
    for c in children {
        let n = c.counts.n() as f64;
        if n < 1.0 {
            continue;
        }
        spread += (c.counts.score_sum() / n - centre).powi(2);
        noise += var / n;
        k += 1.0;
    }
    let tau2 = if k > 0.0 {
        ((spread - noise) / k).max(0.02f64.powi(2))
    } else {
        0.02f64.powi(2)
    };
    (var / tau2).min(1e5)
}
