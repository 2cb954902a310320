//! Survey-to-contact join state for one partition pair.
//!
//! Semantics (deterministic, so a replay or an offline recomputation gets the same answer):
//! a survey submitted at `t` is attributed among the accepted contacts with
//! `ended_at` in `[t - lookback, t + max_wait]`: by its ticket id when it has one, else via
//! the customer's most recent contact's ticket. Among that ticket's contacts the policy picks
//! the last (or first) by `(ended_at, interaction_id)`. A survey waits until the contact
//! stream's lateness horizon passes `t + max_wait`: from then on no accepted contact can fall
//! in its range, so the answer can no longer change. Contacts no pending or future survey can
//! reach are evicted; both maps have hard caps whose overflow is counted.

use crate::model::{Attribution, Interaction, MatchKind, Survey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Which contact of a ticket gets the credit for its survey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AttributionPolicy {
    #[default]
    Last,
    First,
}

#[derive(Clone, Debug)]
pub struct JoinConfig {
    pub policy: AttributionPolicy,
    pub lookback_ms: i64,
    pub max_wait_ms: i64,
    pub max_contacts: usize,
    pub max_pending: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Contact {
    interaction_id: String,
    ticket_id: String,
    customer_id: String,
    agent_id: String,
    team: String,
    channel: String,
    bucket: String,
    category: String,
    product: Option<String>,
    ended_at_ms: i64,
}

/// A survey whose attribution is settled.
#[derive(Debug)]
pub struct Resolved {
    pub survey: Survey,
    pub attribution: Option<Attribution>,
    /// Settled before its wait was over because the pending map was full.
    pub forced: bool,
}

#[derive(Default, Serialize, Deserialize)]
pub struct JoinState {
    contacts: HashMap<u64, Contact>,
    by_ticket: HashMap<String, Vec<u64>>,
    by_customer: HashMap<String, Vec<u64>>,
    by_time: BTreeSet<(i64, u64)>,
    /// Keyed by (deadline = submitted_at + max_wait, arrival seq).
    pending: BTreeMap<(i64, u64), Survey>,
    next_seq: u64,
}

impl JoinState {
    pub fn contacts_len(&self) -> usize {
        self.contacts.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Submission time of the oldest survey still waiting, which holds back window closing.
    pub fn earliest_pending_ms(&self, cfg: &JoinConfig) -> Option<i64> {
        self.pending
            .keys()
            .next()
            .map(|(deadline, _)| deadline - cfg.max_wait_ms)
    }

    /// Indexes an accepted contact. Returns how many contacts the cap pushed out.
    pub fn add_contact(&mut self, i: &Interaction, cfg: &JoinConfig) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_ticket
            .entry(i.ticket_id.clone())
            .or_default()
            .push(seq);
        self.by_customer
            .entry(i.customer_id.clone())
            .or_default()
            .push(seq);
        self.by_time.insert((i.ended_at_ms, seq));
        self.contacts.insert(
            seq,
            Contact {
                interaction_id: i.interaction_id.clone(),
                ticket_id: i.ticket_id.clone(),
                customer_id: i.customer_id.clone(),
                agent_id: i.agent_id.clone(),
                team: i.team.clone(),
                channel: i.channel.clone(),
                bucket: i.bucket.clone(),
                category: i.category.clone(),
                product: i.product.clone(),
                ended_at_ms: i.ended_at_ms,
            },
        );
        let mut evicted = 0;
        while self.contacts.len() > cfg.max_contacts {
            match self.by_time.first().copied() {
                Some((_, oldest)) => {
                    self.remove_contact(oldest);
                    evicted += 1;
                }
                None => break,
            }
        }
        evicted
    }

    /// Parks a survey until its wait is over. When the pending map is full the oldest
    /// survey is settled early (returned) so memory stays bounded.
    pub fn add_survey(&mut self, s: Survey, cfg: &JoinConfig) -> Option<Resolved> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending
            .insert((s.submitted_at_ms.saturating_add(cfg.max_wait_ms), seq), s);
        if self.pending.len() > cfg.max_pending {
            let (_, survey) = self.pending.pop_first()?;
            let attribution = self.attribute(&survey, cfg);
            return Some(Resolved {
                survey,
                attribution,
                forced: true,
            });
        }
        None
    }

    /// Settles every survey whose deadline is below the contact stream's horizon.
    pub fn resolve_until(
        &mut self,
        contact_horizon: i64,
        cfg: &JoinConfig,
        out: &mut Vec<Resolved>,
    ) {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 >= contact_horizon {
                break;
            }
            let survey = entry.remove();
            let attribution = self.attribute(&survey, cfg);
            out.push(Resolved {
                survey,
                attribution,
                forced: false,
            });
        }
    }

    /// Drops contacts older than `floor`; callers pass the oldest survey time that can still
    /// need one, minus the lookback.
    pub fn evict_before(&mut self, floor: i64) {
        while let Some(&(t, seq)) = self.by_time.first() {
            if t >= floor {
                break;
            }
            self.remove_contact(seq);
        }
    }

    fn remove_contact(&mut self, seq: u64) {
        let Some(c) = self.contacts.remove(&seq) else {
            return;
        };
        self.by_time.remove(&(c.ended_at_ms, seq));
        for (map, key) in [
            (&mut self.by_ticket, &c.ticket_id),
            (&mut self.by_customer, &c.customer_id),
        ] {
            if let Some(v) = map.get_mut(key) {
                v.retain(|&x| x != seq);
                if v.is_empty() {
                    map.remove(key);
                }
            }
        }
    }

    fn in_range<'a>(
        &'a self,
        ids: Option<&'a Vec<u64>>,
        lo: i64,
        hi: i64,
    ) -> impl Iterator<Item = &'a Contact> + 'a {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.contacts.get(id))
            .filter(move |c| c.ended_at_ms >= lo && c.ended_at_ms <= hi)
    }

    fn attribute(&self, s: &Survey, cfg: &JoinConfig) -> Option<Attribution> {
        let lo = s.submitted_at_ms.saturating_sub(cfg.lookback_ms);
        let hi = s.submitted_at_ms.saturating_add(cfg.max_wait_ms);
        let order = |c: &&Contact| (c.ended_at_ms, c.interaction_id.clone());
        let (ticket, matched_by) = match &s.ticket_id {
            Some(t) => (t.clone(), MatchKind::Ticket),
            None => {
                let latest = self
                    .in_range(self.by_customer.get(&s.customer_id), lo, hi)
                    .max_by_key(order)?;
                (latest.ticket_id.clone(), MatchKind::Customer)
            }
        };
        let candidates = self.in_range(self.by_ticket.get(&ticket), lo, hi);
        let chosen = match cfg.policy {
            AttributionPolicy::Last => candidates.max_by_key(order),
            AttributionPolicy::First => candidates.min_by_key(order),
        }?;
        Some(Attribution {
            interaction_id: chosen.interaction_id.clone(),
            ticket_id: chosen.ticket_id.clone(),
            agent_id: chosen.agent_id.clone(),
            team: chosen.team.clone(),
            channel: chosen.channel.clone(),
            bucket: chosen.bucket.clone(),
            category: chosen.category.clone(),
            product: chosen.product.clone(),
            matched_by,
        })
    }
}

#[cfg(test)]
mod tests;
