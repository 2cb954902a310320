//! Business counts (responses, NPS classes, CSAT, contacts, handle time, join outcomes) of
//! settled facts, aggregated by their low-cardinality labels. The Kafka job holds them per
//! partition until the checkpoint covering those facts is written, and only then adds them
//! to the Prometheus counters: a replay after a crash or a rebalance starts after that
//! checkpoint, so no fact is counted twice across processes, and the NPS alert reads exact
//! series.

use crate::model::{MatchKind, NpsClass, UNATTRIBUTED, UNKNOWN};
use crate::pipeline::partition::{ContactFact, Outputs, SurveyFact};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SurveyCounts {
    pub(super) n: u64,
    pub(super) classes: [u64; 3],
    pub(super) csat: u64,
    pub(super) sat: u64,
}

#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// count when they settle, revisions not at all.
    pub fn of<'a>(
        surveys: impl Iterator<Item = &'a SurveyFact>,
        contacts: impl Iterator<Item = &'a ContactFact>,
    ) -> Business {
        let mut by: HashMap<[&str; 3], SurveyCounts> = HashMap::new();
        let mut matched = [0u64; 3];
        // Each survey once, at its settlement, under its first answer: counters cannot
        // move a count between labels when a late contact revises it.
        for (f, first) in surveys.filter_map(|f| Some((f, f.first.as_ref()?))) {
            let s = &f.resolved.survey;
            let a = first.as_ref();
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

/// Cumulative counts, as a partition's lineage of owners carries them (delivery::store):
/// what is due for publishing is the cumulative count past what was already published, so
/// an owner replaying facts its predecessor already counted publishes nothing for them.
impl Business {
    /// Counts in `self` beyond `published`, component by component (never below zero).
    pub fn beyond(&self, published: &Business) -> Business {
        let mut out = Business::default();
        for (k, v) in &self.surveys {
            let was = published.surveys.get(k).copied().unwrap_or_default();
            let d = SurveyCounts {
                n: v.n.saturating_sub(was.n),
                classes: [0, 1, 2].map(|i| v.classes[i].saturating_sub(was.classes[i])),
                csat: v.csat.saturating_sub(was.csat),
                sat: v.sat.saturating_sub(was.sat),
            };
            if d != SurveyCounts::default() {
                out.surveys.insert(k.clone(), d);
            }
        }
        for (k, &(n, ms)) in &self.contacts {
            let (wn, wms) = published.contacts.get(k).copied().unwrap_or_default();
            let d = (n.saturating_sub(wn), ms.saturating_sub(wms));
            if d != (0, 0) {
                out.contacts.insert(k.clone(), d);
            }
        }
        out.matched = [0, 1, 2].map(|i| self.matched[i].saturating_sub(published.matched[i]));
        out
    }

    /// Raises every component to at least `other`'s.
    pub fn raise_to(&mut self, other: &Business) {
        for (k, v) in &other.surveys {
            let e = self.surveys.entry(k.clone()).or_default();
            e.n = e.n.max(v.n);
            for (a, b) in e.classes.iter_mut().zip(v.classes) {
                *a = (*a).max(b);
            }
            e.csat = e.csat.max(v.csat);
            e.sat = e.sat.max(v.sat);
        }
        for (k, &(n, ms)) in &other.contacts {
            let e = self.contacts.entry(k.clone()).or_default();
            *e = (e.0.max(n), e.1.max(ms));
        }
        for (a, b) in self.matched.iter_mut().zip(other.matched) {
            *a = (*a).max(b);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.surveys.is_empty() && self.contacts.is_empty() && self.matched == [0; 3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: u64, contacts: u64) -> Business {
        let mut b = Business::default();
        let k = ["r".to_string(), "c".to_string(), "b".to_string()];
        b.surveys.insert(
            k.clone(),
            SurveyCounts {
                n,
                classes: [n, 0, 0],
                csat: 4 * n,
                sat: n,
            },
        );
        b.contacts.insert(k, (contacts, 1_000 * contacts));
        b.matched = [n, 0, 0];
        b
    }

    #[test]
    fn an_owner_publishes_only_what_its_predecessors_did_not() {
        // The first owner published 10 surveys and 5 contacts; the next one restored an
        // older base (7 and 3) and replays: nothing is due until it passes 10 and 5.
        let published = counts(10, 5);
        assert!(counts(7, 3).beyond(&published).is_empty());
        assert!(counts(10, 5).beyond(&published).is_empty());
        let due = counts(12, 5).beyond(&published);
        assert_eq!(due, {
            let mut d = counts(2, 0);
            d.contacts.clear();
            d
        });
        let mut p = published.clone();
        p.raise_to(&counts(12, 4));
        assert_eq!(p, {
            let mut d = counts(12, 5);
            d.surveys.values_mut().for_each(|s| s.n = 12);
            d
        });
        // Every owner publishing `beyond` then raising: the sum is the last cumulative.
        let mut total = Business::default();
        let mut mark = Business::default();
        for cum in [counts(4, 2), counts(9, 6), counts(7, 5), counts(15, 8)] {
            total.merge(cum.beyond(&mark));
            mark.raise_to(&cum);
        }
        assert_eq!(total, counts(15, 8));
    }
}
