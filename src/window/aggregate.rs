//! Mergeable partial aggregates. Rows hold counts and sums only; NPS, CSAT %, AHT and the NPS
//! margin of error are derived by summing partials, so rows from several consumers (one per
//! partition set) add up exactly at query time.

use serde::{Deserialize, Serialize};

/// Runs `$body` on every count of `$a` (as `&mut u64`) with the same count of `$b`, field by
/// field: the one list of a partial's fields, written out so the hot path stays plain adds.
macro_rules! each_count {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {
        each_count!(@ $a, $b, $x, $y, $body; responses nps_n promoters passives detractors
            csat_n csat_satisfied csat_sum attributed contacts handle_ms talk_ms hold_ms wrap_ms)
    };
    (@ $a:expr, $b:expr, $x:ident, $y:ident, $body:expr; $($f:ident)*) => {
        $({
            let $x = &mut $a.$f;
            let $y = $b.$f;
            $body;
        })*
    };
}

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
        self.merge(&Partial::survey(nps, csat, attributed));
    }

    /// One survey answer on its own, so it can be added to one row and taken out of another
    /// when a revision moves it.
    pub fn survey(nps: Option<u8>, csat: Option<u8>, attributed: bool) -> Partial {
        let mut p = Partial {
            responses: 1,
            attributed: u64::from(attributed),
            ..Partial::default()
        };
        if let Some(n) = nps {
            p.nps_n = 1;
            match crate::model::NpsClass::of(n) {
                crate::model::NpsClass::Promoter => p.promoters = 1,
                crate::model::NpsClass::Passive => p.passives = 1,
                crate::model::NpsClass::Detractor => p.detractors = 1,
            }
        }
        if let Some(c) = csat {
            p.csat_n = 1;
            p.csat_sum = u64::from(c);
            p.csat_satisfied = u64::from(c >= 4);
        }
        p
    }

    /// Folds one contact. Durations are validated upstream (non-negative, at most
    /// `ingest.max_duration`); the sums saturate rather than wrap regardless.
    pub fn add_contact(&mut self, talk_ms: u64, hold_ms: u64, wrap_ms: u64) {
        self.merge(&Partial {
            contacts: 1,
            talk_ms,
            hold_ms,
            wrap_ms,
            handle_ms: talk_ms.saturating_add(hold_ms).saturating_add(wrap_ms),
            ..Partial::default()
        });
    }

    pub fn merge(&mut self, o: &Partial) {
        each_count!(self, o, |a, b| *a = a.saturating_add(b));
    }

    /// Takes out what an earlier `merge` put in (a revised survey leaving its old segment).
    pub fn subtract(&mut self, o: &Partial) {
        each_count!(self, o, |a, b| {
            debug_assert!(*a >= b, "subtracting more than was added");
            *a = a.saturating_sub(b)
        });
    }

    /// `self - o`, or None when some count of `o` is larger (the difference is negative).
    pub fn checked_sub(&self, o: &Partial) -> Option<Partial> {
        let mut d = *self;
        let mut ok = true;
        each_count!(d, o, |a, b| match a.checked_sub(b) {
            Some(v) => *a = v,
            None => ok = false,
        });
        ok.then_some(d)
    }

    /// Events folded (responses and contacts).
    pub fn events(&self) -> u64 {
        self.responses.saturating_add(self.contacts)
    }

    /// Whether every count is zero: a row a revision emptied.
    pub fn is_zero(&self) -> bool {
        *self == Partial::default()
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
            let c = crate::stats::Counts::new(self.promoters, self.passives, self.detractors);
            let iv = crate::stats::nps_interval(&c, 1.96);
            (iv.high - iv.low) / 2.0
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
    fn margin_of_error_is_the_adjusted_wald_half_width() {
        let mut p = Partial::default();
        // 50 promoters, 30 passives, 20 detractors, adjusted Wald: n=103, p=50.75/103,
        // d=20.75/103, var=(p+d-(p-d)^2)/103.
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
        let (pa, da) = (50.75 / 103.0, 20.75 / 103.0);
        let var: f64 = (pa + da - (pa - da) * (pa - da)) / 103.0;
        assert!((moe - 100.0 * 1.96 * var.sqrt()).abs() < 1e-9, "{moe}");
    }
}
