//! Business counts (responses, NPS classes, CSAT, contacts, handle time, join outcomes) of
//! settled facts, aggregated by their low-cardinality labels. The Kafka job holds them per
//! partition until the checkpoint covering those facts is written, and only then adds them
//! to the Prometheus counters: a replay after a crash or a rebalance starts after that
//! checkpoint, so no fact is counted twice across processes, and the NPS alert reads exact
//! series.

use crate::model::{MatchKind, NpsClass, UNATTRIBUTED, UNKNOWN};
use crate::pipeline::partition::{ContactFact, Outputs, SurveyFact};
use std::collections::{BTreeMap, HashMap};

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SurveyCounts {
    pub(super) n: u64,
    pub(super) classes: [u64; 3],
    pub(super) csat: u64,
    pub(super) sat: u64,
}

#[derive(Default, Debug, PartialEq, Eq)]
pub struct Business {
    /// [region, channel, bucket] of settled surveys.
    pub(super) surveys: HashMap<[String; 3], SurveyCounts>,
    /// [team, channel, bucket] of contacts: (count, handle ms).
    pub(super) contacts: HashMap<[String; 3], (u64, u64)>,
    /// matched by ticket, by customer, unattributed.
    pub(super) matched: [u64; 3],
}

impl Business {
    /// Counts of these facts; provisional survey facts (a bounded run's unsettled surveys)
    /// count when they settle.
    pub fn of<'a>(
        surveys: impl Iterator<Item = &'a SurveyFact>,
        contacts: impl Iterator<Item = &'a ContactFact>,
    ) -> Business {
        let mut by: HashMap<[&str; 3], SurveyCounts> = HashMap::new();
        let mut matched = [0u64; 3];
        for f in surveys.filter(|f| f.is_final) {
            let s = &f.resolved.survey;
            let a = f.resolved.attribution.as_ref();
            let e = by
                .entry([
                    s.region.as_deref().unwrap_or(UNKNOWN),
                    a.map_or(UNATTRIBUTED, |a| a.channel.as_str()),
                    a.map_or(UNATTRIBUTED, |a| a.bucket.as_str()),
                ])
                .or_default();
            e.n += 1;
            if let Some(n) = s.nps_score {
                e.classes[NpsClass::of(n) as usize] += 1;
            }
            if let Some(c) = s.csat_score {
                e.csat += 1;
                e.sat += u64::from(c >= 4);
            }
            matched[match a.map(|a| a.matched_by) {
                Some(MatchKind::Ticket) => 0,
                Some(MatchKind::Customer) => 1,
                None => 2,
            }] += 1;
        }
        let mut cs: HashMap<[&str; 3], (u64, u64)> = HashMap::new();
        for f in contacts {
            let i = &f.interaction;
            let e = cs.entry([&i.team, &i.channel, &i.bucket]).or_default();
            e.0 += 1;
            e.1 =
                e.1.saturating_add(u64::try_from(i.handle_ms()).unwrap_or(0));
        }
        let own = |k: [&str; 3]| k.map(str::to_owned);
        Business {
            surveys: by.into_iter().map(|(k, v)| (own(k), v)).collect(),
            contacts: cs.into_iter().map(|(k, v)| (own(k), v)).collect(),
            matched,
        }
    }

    /// The batch's counts split by source partition.
    pub fn by_partition(out: &Outputs) -> BTreeMap<i32, Business> {
        let mut parts: BTreeMap<i32, (Vec<&SurveyFact>, Vec<&ContactFact>)> = BTreeMap::new();
        for f in &out.surveys {
            parts.entry(f.partition).or_default().0.push(f);
        }
        for f in &out.contacts {
            parts.entry(f.partition).or_default().1.push(f);
        }
        parts
            .into_iter()
            .map(|(p, (s, c))| (p, Business::of(s.into_iter(), c.into_iter())))
            .collect()
    }

    pub fn merge(&mut self, o: Business) {
        for (k, v) in o.surveys {
            let e = self.surveys.entry(k).or_default();
            e.n += v.n;
            for (a, b) in e.classes.iter_mut().zip(v.classes) {
                *a += b;
            }
            e.csat += v.csat;
            e.sat += v.sat;
        }
        for (k, (n, ms)) in o.contacts {
            let e = self.contacts.entry(k).or_default();
            e.0 += n;
            e.1 = e.1.saturating_add(ms);
        }
        for (a, b) in self.matched.iter_mut().zip(o.matched) {
            *a += b;
        }
    }
}
