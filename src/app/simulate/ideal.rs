//! The ideal reference for recall: per injected drop, one CUSUM on the drop's own segment
//! that knows every affected answer's true level and the drop's true size (no baseline to
//! estimate, no bank of sizes to share a budget with), held to the in-control run length one
//! CUSUM would get in place of the detector's bank for that segment. No detector working
//! from data can be faster at the same false-alarm rate; how far the detector is behind it
//! is the price of estimating what the ideal is told.

use crate::detect::cusum::threshold;
use crate::stats::sample::mix_for;

#[derive(Clone, Debug, Default)]
pub struct Ideal {
    s: f64,
    llr: f64,
    /// Kullback–Leibler divergence of the drop's answers so far, and hours seen.
    kl: f64,
    hours: f64,
    /// Hour the CUSUM crossed its threshold.
    pub fired: Option<i64>,
}

impl Ideal {
    /// One affected answer of expected NPS `level` before the drop, `points` taken off.
    pub fn answer(&mut self, level: f64, points: f64, class: usize) {
        let null = mix_for(level);
        let alt = mix_for(level - points);
        let (n, a) = ([null.p, null.q, null.d], [alt.p, alt.q, alt.d]);
        if let (Some(x), Some(y)) = (n.get(class), a.get(class)) {
            self.llr += (y / x).ln();
        }
        self.kl += n.iter().zip(&a).map(|(x, y)| x * (x / y).ln()).sum::<f64>();
    }

    /// The end of an hour from the drop's start: add its evidence, check the threshold.
    pub fn hour(&mut self, hour: i64, arl: Option<f64>) {
        self.s = (self.s + self.llr).max(0.0);
        self.llr = 0.0;
        self.hours += 1.0;
        let Some(arl) = arl else { return };
        let h = threshold(arl, self.kl / self.hours);
        if self.fired.is_none() && self.s >= h {
            self.fired = Some(hour);
        }
    }
}
