//! The sequential test: per segment, one CUSUM of the log likelihood ratio "NPS is δ below
//! its baseline" against "NPS is at its baseline" for each drop size in a small bank (δ, 2δ,
//! 4δ, ... up to a cap), so a large drop is caught at the speed its size allows while δ sets
//! the smallest drop worth a page.
//!
//! Thresholds: every CUSUM gets an equal share of the weekly false-page budget, so its
//! in-control average run length must be A = (number of CUSUMs) × 168 h / budget. For a
//! CUSUM whose hourly log-ratio drifts down by μ (the Kullback–Leibler divergence per hour,
//! after over-dispersion), Siegmund's approximation gives ARL ≈ e^(h + 1.166·√(2μ)) / μ, so
//! h = ln(A·μ) − 1.166·√(2μ). The threshold therefore grows only with the logarithm of the
//! number of segments and adapts to each segment's volume.

use crate::stats::{tilt, Counts, Mix};

/// Siegmund's overshoot correction for a CUSUM of normal-ish increments.
const OVERSHOOT: f64 = 1.166;
/// No threshold below this: a handful of answers must never page on their own.
pub const MIN_THRESHOLD: f64 = 3.0;

#[derive(Clone, Debug)]
pub struct Cusum {
    /// Drop size this CUSUM is tuned to, as a mean score (NPS points / 100).
    pub delta: f64,
    /// Current statistic (>= 0).
    pub s: f64,
    /// First hour of the current excursion above zero: the estimated change start.
    pub start: i64,
    pub threshold: f64,
}

impl Cusum {
    pub fn bank(delta_points: f64, max_points: f64) -> Vec<Cusum> {
        let mut out = Vec::new();
        let mut d = delta_points;
        while d <= max_points + 1e-9 || out.is_empty() {
            out.push(Cusum {
                delta: d / 100.0,
                s: 0.0,
                start: 0,
                threshold: f64::INFINITY,
            });
            d *= 2.0;
        }
        out
    }

    /// Adds one hour's evidence; true when the statistic crosses the threshold.
    pub fn update(&mut self, hour: i64, llr: f64) -> bool {
        if self.s <= 0.0 {
            self.start = hour;
        }
        self.s = (self.s + llr).max(0.0);
        if self.s <= 0.0 {
            self.start = hour + 1;
        }
        self.s >= self.threshold
    }

    pub fn reset(&mut self, hour: i64) {
        self.s = 0.0;
        self.start = hour;
    }
}

/// One hour's evidence for every CUSUM of a bank, each against "`delta` below `null_mean`";
/// the index of the one that crossed its threshold by the largest ratio, if any.
pub fn step_bank(
    bank: &mut [Cusum],
    hour: i64,
    c: &Counts,
    null: Mix,
    null_mean: f64,
    phi: f64,
) -> Option<usize> {
    let mut fired: Option<(f64, usize)> = None;
    for (k, cu) in bank.iter_mut().enumerate() {
        let (theta, lnz) = alternative(null, null_mean, cu.delta);
        if cu.update(hour, llr(c, theta, lnz, phi)) {
            let ratio = cu.s / cu.threshold;
            if fired.is_none_or(|(r, _)| ratio > r) {
                fired = Some((ratio, k));
            }
        }
    }
    fired.map(|(_, k)| k)
}

/// θ and ln Z of the alternative "mean score `delta` below `null_mean`" against `null`.
pub fn alternative(null: Mix, null_mean: f64, delta: f64) -> (f64, f64) {
    let (_, theta, lnz) = tilt(null, null_mean - delta);
    (theta, lnz)
}

/// Log likelihood ratio of one hour's answers, divided by the over-dispersion factor
/// (a quasi-likelihood: over-dispersed hours carry less evidence than their count says).
pub fn llr(c: &Counts, theta: f64, lnz: f64, phi: f64) -> f64 {
    (theta * c.score_sum() - c.n() as f64 * lnz) / phi
}

/// Kullback–Leibler divergence of the alternative from the null, per answer.
pub fn kl_per_answer(null_mean: f64, theta: f64, lnz: f64) -> f64 {
    (lnz - theta * null_mean).max(0.0)
}

/// The threshold giving an in-control average run length of `arl_hours` to a CUSUM whose
/// hourly log-ratio drifts down by `rate`.
pub fn threshold(arl_hours: f64, rate: f64) -> f64 {
    if rate <= 0.0 || !rate.is_finite() {
        return f64::INFINITY;
    }
    ((arl_hours * rate).ln() - OVERSHOOT * (2.0 * rate).sqrt()).max(MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_double_up_to_the_cap() {
        let b: Vec<f64> = Cusum::bank(5.0, 40.0).iter().map(|c| c.delta).collect();
        assert_eq!(b, vec![0.05, 0.1, 0.2, 0.4]);
        assert_eq!(Cusum::bank(50.0, 40.0).len(), 1);
    }

    #[test]
    fn the_threshold_matches_the_issue_figure_for_a_team_of_1000_a_day() {
        // Baseline NPS 30 (p .5, q .3, d .2), 10-point drop, 1,000 answers a day, one
        // CUSUM among 2,000 with a budget of 1 a week.
        let null = Mix {
            p: 0.5,
            q: 0.3,
            d: 0.2,
        };
        let (theta, lnz) = alternative(null, 0.3, 0.1);
        let rate = kl_per_answer(0.3, theta, lnz) * 1000.0 / 24.0;
        assert!((rate - 0.34).abs() < 0.03, "{rate}");
        let h = threshold(2000.0 * 168.0, rate);
        // Expected delay ≈ (h + 1.166·√(2μ) − 1) / μ: close to the issue's ~31 h.
        let delay = (h + OVERSHOOT * (2.0 * rate).sqrt() - 1.0) / rate;
        assert!((25.0..35.0).contains(&delay), "{h} {delay}");
    }

    #[test]
    fn the_statistic_restarts_at_zero_and_remembers_where_the_excursion_began() {
        let mut c = Cusum::bank(10.0, 10.0).remove(0);
        c.threshold = 5.0;
        assert!(!c.update(10, -1.0));
        assert_eq!((c.s, c.start), (0.0, 11));
        assert!(!c.update(11, 2.0));
        assert!(!c.update(12, 2.0));
        assert!(c.update(13, 2.0));
        assert_eq!(c.start, 11);
    }
}
