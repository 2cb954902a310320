//! Mergeable partial aggregates. Rows hold counts and sums only; NPS, CSAT %, AHT and the NPS
//! margin of error are derived by summing partials, so rows from several consumers (one per
//! partition set) add up exactly at query time.

use serde::{Deserialize, Serialize};

/// Counts and sums for one (window, grouping, dimension values, source partition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    pub responses: u64,
    pub nps_n: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub csat_n: u64,
    pub csat_satisfied: u64,
    pub csat_sum: u64,
    pub attributed: u64,
    pub contacts: u64,
    pub handle_ms: u64,
    pub talk_ms: u64,
    pub hold_ms: u64,
    pub wrap_ms: u64,
}

impl Partial {
    /// Folds one survey answer. Scores are validated upstream (NPS 0-10, CSAT 1-5).
    pub fn add_survey(&mut self, nps: Option<u8>, csat: Option<u8>, attributed: bool) {
        self.responses += 1;
        if let Some(n) = nps {
            self.nps_n += 1;
            match n {
                9..=10 => self.promoters += 1,
                7..=8 => self.passives += 1,
                _ => self.detractors += 1,
            }
        }
        if let Some(c) = csat {
            self.csat_n += 1;
            self.csat_sum += u64::from(c);
            if c >= 4 {
                self.csat_satisfied += 1;
            }
        }
        if attributed {
            self.attributed += 1;
        }
    }

    /// Folds one contact. Durations are validated non-negative upstream.
    pub fn add_contact(&mut self, talk_ms: u64, hold_ms: u64, wrap_ms: u64) {
        self.contacts += 1;
        self.talk_ms += talk_ms;
        self.hold_ms += hold_ms;
        self.wrap_ms += wrap_ms;
        self.handle_ms += talk_ms + hold_ms + wrap_ms;
    }

    pub fn merge(&mut self, o: &Partial) {
        self.responses += o.responses;
        self.nps_n += o.nps_n;
        self.promoters += o.promoters;
        self.passives += o.passives;
        self.detractors += o.detractors;
        self.csat_n += o.csat_n;
        self.csat_satisfied += o.csat_satisfied;
        self.csat_sum += o.csat_sum;
        self.attributed += o.attributed;
        self.contacts += o.contacts;
        self.handle_ms += o.handle_ms;
        self.talk_ms += o.talk_ms;
        self.hold_ms += o.hold_ms;
        self.wrap_ms += o.wrap_ms;
    }

    /// Events folded so far. Only ever grows, which makes it the row version: the complete
    /// state of a window has the highest count, so ReplacingMergeTree keeps it under replay.
    pub fn events(&self) -> u64 {
        self.responses + self.contacts
    }

    /// NPS in [-100, 100], or None with no NPS answers.
    pub fn nps(&self) -> Option<f64> {
        (self.nps_n > 0)
            .then(|| 100.0 * (self.promoters as f64 - self.detractors as f64) / self.nps_n as f64)
    }

    /// Half-width of the 95% confidence interval of NPS, in NPS points. Treats each answer
    /// as +1/0/-1: Var = (p + d - (p - d)^2) / n.
    pub fn nps_margin_of_error(&self) -> Option<f64> {
        (self.nps_n > 0).then(|| {
            let n = self.nps_n as f64;
            let p = self.promoters as f64 / n;
            let d = self.detractors as f64 / n;
            let var = (p + d - (p - d).powi(2)) / n;
            100.0 * 1.96 * var.max(0.0).sqrt()
        })
    }

    /// Share of CSAT answers that are 4 or 5, in percent.
    pub fn csat_pct(&self) -> Option<f64> {
        (self.csat_n > 0).then(|| 100.0 * self.csat_satisfied as f64 / self.csat_n as f64)
    }

    /// Average handle time in seconds.
    pub fn aht_s(&self) -> Option<f64> {
        (self.contacts > 0).then(|| self.handle_ms as f64 / 1000.0 / self.contacts as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (is_survey, nps, csat, talk, hold, wrap)
    type Ev = (bool, Option<u8>, Option<u8>, u32, u32, u32);

    fn event() -> impl Strategy<Value = Ev> {
        (
            any::<bool>(),
            proptest::option::of(0u8..=10),
            proptest::option::of(1u8..=5),
            0u32..100_000,
            0u32..100_000,
            0u32..100_000,
        )
    }

    fn fold(events: &[Ev]) -> Partial {
        let mut p = Partial::default();
        for &(survey, nps, csat, t, h, w) in events {
            if survey {
                p.add_survey(nps, csat, t % 2 == 0);
            } else {
                p.add_contact(t.into(), h.into(), w.into());
            }
        }
        p
    }

    proptest! {
        #[test]
        fn merge_in_any_split_and_order_equals_one_fold(
            events in proptest::collection::vec(event(), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..6),
            reverse in any::<bool>(),
        ) {
            let whole = fold(&events);
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
            bounds.push(0);
            bounds.push(events.len());
            bounds.sort_unstable();
            let mut parts: Vec<Partial> =
                bounds.windows(2).map(|w| fold(&events[w[0]..w[1]])).collect();
            if reverse {
                parts.reverse();
            }
            let mut merged = Partial::default();
            for p in &parts {
                merged.merge(p);
            }
            prop_assert_eq!(merged, whole);
        }

        #[test]
        fn nps_is_bounded_and_counts_add_up(events in proptest::collection::vec(event(), 1..300)) {
            let p = fold(&events);
            prop_assert_eq!(p.promoters + p.passives + p.detractors, p.nps_n);
            if let Some(nps) = p.nps() {
                prop_assert!((-100.0..=100.0).contains(&nps));
                let moe = p.nps_margin_of_error().unwrap_or(f64::NAN);
                prop_assert!((0.0..=196.0).contains(&moe));
            }
            if let Some(c) = p.csat_pct() {
                prop_assert!((0.0..=100.0).contains(&c));
            }
        }
    }

    #[test]
    fn score_buckets_match_the_nps_definition() {
        let mut p = Partial::default();
        for s in 0..=10 {
            p.add_survey(Some(s), None, false);
        }
        // 0-6 detractors, 7-8 passives, 9-10 promoters.
        assert_eq!((p.detractors, p.passives, p.promoters), (7, 2, 2));
        let expected = 100.0 * (2.0 - 7.0) / 11.0;
        assert!((p.nps().unwrap_or(0.0) - expected).abs() < 1e-9);
    }

    #[test]
    fn margin_of_error_matches_hand_computation() {
        let mut p = Partial::default();
        // 50 promoters, 30 passives, 20 detractors: p=.5 d=.2 var=(.7-.09)/100=.0061
        for _ in 0..50 {
            p.add_survey(Some(10), None, false);
        }
        for _ in 0..30 {
            p.add_survey(Some(7), None, false);
        }
        for _ in 0..20 {
            p.add_survey(Some(0), None, false);
        }
        let moe = p.nps_margin_of_error().unwrap_or(0.0);
        assert!(
            (moe - 100.0 * 1.96 * 0.0061f64.sqrt()).abs() < 1e-9,
            "{moe}"
        );
    }
}
