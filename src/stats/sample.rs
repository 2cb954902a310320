//! Seeded draws for the detector's simulated world and the statistical tests: volumes and
//! promoter/passive/detractor classes from a mix with a given NPS.

use super::{tilt, Counts, Mix};
use crate::rng::Rng;

pub fn normal(r: &mut Rng) -> f64 {
    let u = r.f64().max(1e-12);
    let v = r.f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Poisson draw (inversion for small means, normal approximation above 50).
pub fn poisson(r: &mut Rng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 50.0 {
        return (mean + mean.sqrt() * normal(r)).round().max(0.0) as u32;
    }
    let l = (-mean).exp();
    let (mut k, mut p) = (0u32, 1.0);
    loop {
        p *= r.f64();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// The simulated mix of answers with expected NPS `nps` (points): the least-surprising
/// tilt of a 50/30/20 promoter/passive/detractor mix (NPS 30).
pub fn mix_for(nps: f64) -> Mix {
    let base = Mix {
        p: 0.5,
        q: 0.3,
        d: 0.2,
    };
    tilt(base, (nps / 100.0).clamp(-0.95, 0.95)).0
}

/// One answer's class drawn from `m`: 0 promoter, 1 passive, 2 detractor.
pub fn draw_class(r: &mut Rng, m: &Mix) -> usize {
    let x = r.f64();
    if x < m.p {
        0
    } else if x < m.p + m.q {
        1
    } else {
        2
    }
}

/// `n` answers drawn from `m`, by class.
pub fn draw_counts(r: &mut Rng, n: u32, m: &Mix) -> Counts {
    let mut c = Counts::default();
    for _ in 0..n {
        match draw_class(r, m) {
            0 => c.promoters += 1,
            1 => c.passives += 1,
            _ => c.detractors += 1,
        }
    }
    c
}
