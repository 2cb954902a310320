//! What an alert says about its segment: NPS since the change start against the baseline
//! over the same hours (intervals widened by the over-dispersion), the children that carry
//! the drop, how much of it is a change of mix, and whether the volume looks like data
//! trouble.

use super::Detector;
use crate::detect::alert::{AlertEvent, AlertState, Contributor, MixSplit, Severity};
use crate::detect::baseline::Baseline;
use crate::stats::{nps_interval, Counts};
use std::collections::BTreeMap;

/// Below half or above twice the expected answers (with at least 20 expected) the page
/// says the data may be at fault.
const VOLUME_FLAG_RATIO: f64 = 2.0;
const VOLUME_FLAG_MIN: f64 = 20.0;

impl Detector {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn describe(
        &self,
        i: usize,
        hour: i64,
        start: i64,
        delta: f64,
        statistic: f64,
        threshold: f64,
        b: &Baseline,
    ) -> AlertEvent {
        let z = self.set.z;
        let s = &self.segs[i];
        let (c, expected) = self.observed_vs_expected(i, b, start, hour);
        let since = nps_interval(&c, z);
        // Over-dispersed answers are worth fewer independent ones: widen by √φ.
        let widen = b.phi.sqrt();
        let base = if c.n() > 0 {
            100.0 * expected / c.n() as f64
        } else {
            100.0 * b.expected(hour, 0.0)
        };
        let from = start.max(hour + 1 - self.ring as i64);
        let exp_volume: f64 = (from..=hour).map(|h| b.expected_volume(h)).sum();
        let volume_ratio = if exp_volume > 0.0 {
            c.n() as f64 / exp_volume
        } else {
            0.0
        };
        let mut data_flags = Vec::new();
        if exp_volume >= VOLUME_FLAG_MIN && volume_ratio < 1.0 / VOLUME_FLAG_RATIO {
            data_flags.push("volume_low".to_string());
        }
        if c.n() as f64 >= VOLUME_FLAG_MIN && volume_ratio > VOLUME_FLAG_RATIO {
            data_flags.push("volume_high".to_string());
        }
        AlertEvent {
            alert_id: String::new(),
            state: AlertState::Firing,
            grouping: s.key.grouping(),
            segment: s.key.label(),
            dims: s
                .key
                .dims()
                .map(|(d, v)| (d.to_string(), v.to_string()))
                .collect(),
            at: (hour + 1) * 3600,
            fired_at: (hour + 1) * 3600,
            change_start: start * 3600,
            nps: since.nps,
            nps_low: since.nps - widen * (since.nps - since.low),
            nps_high: since.nps + widen * (since.high - since.nps),
            n: since.n,
            baseline_nps: base,
            baseline_low: base - z * 100.0 * b.se,
            baseline_high: base + z * 100.0 * b.se,
            baseline_n: b.raw.n(),
            effect: since.nps - base,
            delta: 100.0 * delta,
            statistic,
            threshold,
            contributors: self.contributors(i, start, hour, c.n()),
            detractor_categories: Vec::new(),
            detractor_response_ids: Vec::new(),
            incident_id: String::new(),
            severity: Severity::Ticket,
            reason: String::new(),
            notify: false,
            drop: 100.0 * delta,
            phi: b.phi,
            mix_split: self.mix_split(i, start, hour),
            volume_ratio,
            data_flags,
            shadow: false,
        }
    }

    /// Children whose answers carry the drop, largest share first (at most five).
    fn contributors(&self, i: usize, start: i64, hour: i64, n: u64) -> Vec<Contributor> {
        let mut out: Vec<Contributor> = self.segs[i]
            .children
            .iter()
            .filter_map(|&ch| {
                let cb = self.segs[ch].baseline.as_ref()?;
                let (cc, ce) = self.observed_vs_expected(ch, cb, start, hour);
                let points = 100.0 * (ce - cc.score_sum()) / n.max(1) as f64;
                (points > 0.0).then(|| Contributor {
                    segment: self.segs[ch].key.label(),
                    points,
                    n: cc.n(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.points
                .total_cmp(&a.points)
                .then_with(|| a.segment.cmp(&b.segment))
        });
        out.truncate(5);
        out
    }

    /// Kitagawa's split of the drop over each grouping of children that covers at least 80 %
    /// of the segment's answers; the grouping where the mix part is largest is reported.
    fn mix_split(&self, i: usize, start: i64, hour: i64) -> Option<MixSplit> {
        let s = &self.segs[i];
        let total = self.segs[i]
            .history
            .sum(start.max(hour + 1 - self.ring as i64), hour + 1);
        // (baseline volume, baseline mean, answers, score sum) per child, by grouping.
        let mut groups: BTreeMap<u8, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
        for &ch in &s.children {
            let Some(cb) = self.segs[ch].baseline.as_ref() else {
                continue;
            };
            let (cc, ce) = self.observed_vs_expected(ch, cb, start, hour);
            let n = cc.n() as f64;
            let m0 = if n > 0.0 { ce / n } else { cb.mix.mean() };
            groups.entry(self.segs[ch].key.mask).or_default().push((
                cb.per_hour,
                m0,
                n,
                cc.score_sum(),
            ));
        }
        let mut best: Option<MixSplit> = None;
        for (mask, parts) in groups {
            let (v0, n1): (f64, f64) = parts.iter().fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.2));
            if v0 <= 0.0 || n1 < 0.8 * total.n() as f64 || n1 <= 0.0 {
                continue;
            }
            let (mut mix, mut within) = (0.0, 0.0);
            for &(v, m0, n, sum) in &parts {
                let (w0, w1) = (v / v0, n / n1);
                mix += (w1 - w0) * m0;
                if n > 0.0 {
                    within += w1 * (sum / n - m0);
                }
            }
            let split = MixSplit {
                by: crate::detect::segment::grouping_name(mask),
                mix: 100.0 * mix,
                within: 100.0 * within,
            };
            if best.as_ref().is_none_or(|b| split.mix.abs() > b.mix.abs()) {
                best = Some(split);
            }
        }
        best
    }

    /// Counts since `start` and what the baseline expected of them (mean score × n).
    pub(super) fn observed_vs_expected(
        &self,
        i: usize,
        b: &Baseline,
        start: i64,
        hour: i64,
    ) -> (Counts, f64) {
        let s = &self.segs[i];
        let from = start.max(hour + 1 - self.ring as i64);
        let mut c = Counts::default();
        let mut expected = 0.0;
        for h in from..=hour {
            let x = s.history.get(h);
            expected += x.n() as f64 * b.expected(h, 0.0);
            c.add(&x);
        }
        (c, expected)
    }
}
