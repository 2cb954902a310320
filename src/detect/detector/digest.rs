//! The daily digest: drops too small or too short to page, flagged with a controlled
//! false-discovery rate across all segments.

use super::Detector;
use crate::detect::alert::DigestEntry;
use crate::stats::{benjamini_hochberg, normal_sf, nps_interval, Counts};

impl Detector {
    /// The digest for the day that just ended (and the week ending with it): segments whose
    /// NPS is below their baseline beyond chance, Benjamini–Hochberg across all segments.
    pub(super) fn digest(&self, day: i64) -> Vec<DigestEntry> {
        let Some(first) = self.first_hour else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for period in [1u32, 7] {
            let from = (day - i64::from(period)) * 24;
            let to = day * 24;
            if from < first || to - from > self.ring as i64 {
                continue;
            }
            let mut cands = Vec::new();
            for s in &self.segs {
                let Some(b) = s
                    .active
                    .as_ref()
                    .map(|a| &a.baseline)
                    .or(s.baseline.as_ref())
                else {
                    continue;
                };
                let mut c = Counts::default();
                let mut expected = 0.0;
                for h in from..to {
                    let x = s.history.get(h);
                    expected += x.n() as f64 * b.expected(h, 0.0);
                    c.add(&x);
                }
                let n = c.n() as f64;
                if n == 0.0 {
                    continue;
                }
                let var =
                    b.phi * b.mix.variance() * n + n * n * (b.se.powi(2) + b.season_var(period));
                let z = (expected - c.score_sum()) / var.sqrt();
                cands.push((s, c, 100.0 * expected / n, normal_sf(z)));
            }
            let ps: Vec<f64> = cands.iter().map(|x| x.3).collect();
            for k in benjamini_hochberg(&ps, self.set.digest_fdr) {
                let (s, c, exp, p) = &cands[k];
                let iv = nps_interval(c, self.set.z);
                out.push(DigestEntry {
                    day: (day - 1) * 86_400,
                    period_days: period,
                    grouping: s.key.grouping(),
                    segment: s.key.label(),
                    nps: iv.nps,
                    nps_low: iv.low,
                    nps_high: iv.high,
                    n: iv.n,
                    expected_nps: *exp,
                    p_value: *p,
                    paging: s.active.is_some(),
                });
            }
        }
        out
    }
}
