//! The statistics the detector, the digest and the boards share: NPS class counts, the
//! adjusted-Wald interval, the least-change ("tilted") mix for a given NPS, and the tail
//! probabilities behind the digest and the harness's intervals.
//!
//! Scores are +1 (promoter), 0 (passive), -1 (detractor), so NPS is 100 × the mean score.

pub mod sample;

/// Answers of one segment over some hours, by NPS class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
}

impl Counts {
    pub fn new(promoters: u64, passives: u64, detractors: u64) -> Self {
        Counts {
            promoters,
            passives,
            detractors,
        }
    }

    pub fn n(&self) -> u64 {
        self.promoters
            .saturating_add(self.passives)
            .saturating_add(self.detractors)
    }

    pub fn add(&mut self, o: &Counts) {
        self.promoters = self.promoters.saturating_add(o.promoters);
        self.passives = self.passives.saturating_add(o.passives);
        self.detractors = self.detractors.saturating_add(o.detractors);
    }

    /// Promoters minus detractors: the sum of the scores.
    pub fn score_sum(&self) -> f64 {
        self.promoters as f64 - self.detractors as f64
    }

    /// Plain NPS in points; None without answers.
    pub fn nps(&self) -> Option<f64> {
        let n = self.n();
        (n > 0).then(|| 100.0 * self.score_sum() / n as f64)
    }
}

/// Class probabilities of one answer (promoter, passive, detractor), all above zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    pub p: f64,
    pub q: f64,
    pub d: f64,
}

/// No class is ever impossible: a segment that never had a detractor may still get one.
const MIN_SHARE: f64 = 1e-4;

impl Mix {
    /// The mix of `c` with `prior_n` pseudo-answers of `prior` added (empirical Bayes).
    pub fn shrunk(c: &Counts, prior: Mix, prior_n: f64) -> Mix {
        let n = c.n() as f64 + prior_n;
        if n <= 0.0 {
            return prior;
        }
        Mix {
            p: (c.promoters as f64 + prior_n * prior.p) / n,
            q: (c.passives as f64 + prior_n * prior.q) / n,
            d: (c.detractors as f64 + prior_n * prior.d) / n,
        }
        .floored()
    }

    fn floored(self) -> Mix {
        let p = self.p.max(MIN_SHARE);
        let q = self.q.max(MIN_SHARE);
        let d = self.d.max(MIN_SHARE);
        let s = p + q + d;
        Mix {
            p: p / s,
            q: q / s,
            d: d / s,
        }
    }

    /// Mean score (NPS / 100).
    pub fn mean(&self) -> f64 {
        self.p - self.d
    }

    /// Variance of one answer's score: p + d - (p - d)².
    pub fn variance(&self) -> f64 {
        (self.p + self.d - self.mean().powi(2)).max(1e-6)
    }
}

/// The mix nearest `base` (least Kullback–Leibler divergence) with mean score `mean`: `base`
/// reweighted by e^(θ·score). Returns the mix, θ and ln Z (the normaliser), so the log
/// likelihood ratio of one answer against `base` is θ·score - ln Z.
///
/// This is how the detector turns "NPS fell by δ" into a full promoter/passive/detractor
/// mix without assuming where the lost promoters went: it is the least surprising mix with
/// that NPS, so the test it makes is the hardest (most cautious) one for that drop.
pub fn tilt(base: Mix, mean: f64) -> (Mix, f64, f64) {
    let m = mean.clamp(-0.999, 0.999);
    // Mean of the tilted mix is m  <=>  p(1-m)u² - m·q·u - d(1+m) = 0, u = e^θ > 0.
    let a = base.p * (1.0 - m);
    let b = -m * base.q;
    let c = -base.d * (1.0 + m);
    let u = (-b + (b * b - 4.0 * a * c).max(0.0).sqrt()) / (2.0 * a);
    let u = u.clamp(1e-12, 1e12);
    let z = base.p * u + base.q + base.d / u;
    let mix = Mix {
        p: base.p * u / z,
        q: base.q / z,
        d: base.d / u / z,
    };
    (mix, u.ln(), z.ln())
}

/// NPS with its adjusted-Wald interval (Rocks, 2016): add 3 answers, 0.75 promoters and 0.75
/// detractors, then use the Wald formula. Plain Wald claims zero uncertainty for 30
/// passives; this one keeps its stated coverage down to a handful of answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NpsInterval {
    /// Plain NPS of the answers (0 without answers), in points.
    pub nps: f64,
    pub low: f64,
    pub high: f64,
    pub n: u64,
}

pub fn nps_interval(c: &Counts, z: f64) -> NpsInterval {
    let n = c.n();
    let na = n as f64 + 3.0;
    let p = (c.promoters as f64 + 0.75) / na;
    let d = (c.detractors as f64 + 0.75) / na;
    let centre = p - d;
    let half = z * ((p + d - centre * centre).max(0.0) / na).sqrt();
    NpsInterval {
        nps: c.nps().unwrap_or(0.0),
        low: (100.0 * (centre - half)).max(-100.0),
        high: (100.0 * (centre + half)).min(100.0),
        n,
    }
}

/// Standard normal upper tail P(Z > x), to about 1e-7 (Abramowitz & Stegun 7.1.26 on erfc).
pub fn normal_sf(x: f64) -> f64 {
    let t = x.abs() / std::f64::consts::SQRT_2;
    let k = 1.0 / (1.0 + 0.327_591_1 * t);
    let poly = k
        * (0.254_829_592
            + k * (-0.284_496_736
                + k * (1.421_413_741 + k * (-1.453_152_027 + k * 1.061_405_429))));
    let erfc = poly * (-t * t).exp();
    if x >= 0.0 {
        0.5 * erfc
    } else {
        1.0 - 0.5 * erfc
    }
}

/// Indices of the hypotheses Benjamini–Hochberg rejects at false-discovery rate `q`.
pub fn benjamini_hochberg(p_values: &[f64], q: f64) -> Vec<usize> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut cut = 0;
    for (rank, &i) in order.iter().enumerate() {
        if p_values[i] <= (rank + 1) as f64 * q / m as f64 {
            cut = rank + 1;
        }
    }
    let mut out = order[..cut].to_vec();
    out.sort_unstable();
    out
}

/// P(X <= k) for X ~ Poisson(λ).
fn poisson_cdf(k: u64, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 1.0;
    }
    let mut term = (-lambda).exp();
    let mut ln_term = -lambda;
    let mut sum = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_term += lambda.ln() - (i as f64).ln();
            term = ln_term.exp();
        }
        sum += term;
    }
    sum.min(1.0)
}

/// Exact (Garwood) 95 % interval for the mean of a Poisson count `k`.
pub fn poisson_interval(k: u64) -> (f64, f64) {
    let solve = |f: &dyn Fn(f64) -> bool| {
        // f is false below the root and true above it.
        let (mut lo, mut hi) = (0.0f64, 10.0 + 4.0 * k as f64);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if f(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        0.5 * (lo + hi)
    };
    let low = if k == 0 {
        0.0
    } else {
        solve(&|l| 1.0 - poisson_cdf(k - 1, l) >= 0.025)
    };
    let high = solve(&|l| poisson_cdf(k, l) <= 0.025);
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilt_reaches_the_asked_mean_and_keeps_the_base_at_its_own_mean() {
        let base = Mix {
            p: 0.5,
            q: 0.3,
            d: 0.2,
        };
        for target in [-0.9, -0.3, 0.0, 0.2, 0.3, 0.6, 0.95] {
            let (m, theta, lnz) = tilt(base, target);
            assert!((m.mean() - target).abs() < 1e-9, "{target}: {m:?}");
            assert!((m.p + m.q + m.d - 1.0).abs() < 1e-9);
            // The log ratio is θ·score - ln Z for every class.
            assert!((m.p / base.p).ln() - (theta - lnz) < 1e-9);
            assert!(((m.d / base.d).ln() - (-theta - lnz)).abs() < 1e-9);
        }
        let (same, theta, _) = tilt(base, 0.3);
        assert!(theta.abs() < 1e-9 && (same.p - 0.5).abs() < 1e-9);
    }

    #[test]
    fn adjusted_wald_is_wide_for_thirty_passives_and_close_to_wald_for_many_answers() {
        let all_passive = nps_interval(&Counts::new(0, 30, 0), 1.96);
        assert_eq!(all_passive.nps, 0.0);
        // Plain Wald would give [0, 0]; the added answers give about ±7 points.
        assert!(
            all_passive.high > 7.0 && all_passive.low < -7.0,
            "{all_passive:?}"
        );
        let big = nps_interval(&Counts::new(5000, 3000, 2000), 1.96);
        let wald = 1.96 * ((0.5 + 0.2 - 0.09) / 10_000f64).sqrt() * 100.0;
        assert!(((big.high - big.low) / 2.0 - wald).abs() < 0.05, "{big:?}");
    }

    #[test]
    fn benjamini_hochberg_matches_a_hand_computed_case() {
        // m = 6, q = 0.1: thresholds 0.0167, 0.033, 0.05, 0.067, 0.083, 0.1.
        let p = [0.01, 0.2, 0.04, 0.03, 0.5, 0.06];
        assert_eq!(benjamini_hochberg(&p, 0.1), vec![0, 2, 3, 5]);
        assert!(benjamini_hochberg(&[0.9, 0.5], 0.05).is_empty());
    }

    #[test]
    fn poisson_interval_matches_published_values() {
        // Garwood intervals: k=0 → [0, 3.689]; k=10 → [4.795, 18.390].
        let (l0, h0) = poisson_interval(0);
        assert!(l0 == 0.0 && (h0 - 3.689).abs() < 0.01);
        let (l, h) = poisson_interval(10);
        assert!(
            (l - 4.795).abs() < 0.01 && (h - 18.390).abs() < 0.01,
            "{l} {h}"
        );
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((normal_sf(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_sf(-1.0) - 0.841_344_7).abs() < 1e-6);
    }
}
