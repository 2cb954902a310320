//! Settling and revising (docs/SEMANTICS.md, "Settled, revised, final").
//!
//! A survey's candidates, in the contact topic's arrival order, are a prefix of its
//! customer's contacts: those that arrived before the contact *floor* passed its deadline
//! (floors only grow) give its first answer, and those after it, up to the revision floor,
//! each fold in as one more step. The answer after each step is a fold over that prefix
//! ([`Fold`]), so the chain of answers is the same whether the late contacts came before the
//! survey settled (folded at settlement) or after (folded as they arrive).

use super::{Contact, JoinState, NIL};
use crate::join::{AttributionPolicy, JoinConfig, Pending, Settled};
use crate::model::{Attribution, MatchKind, Survey};
use compact_str::CompactString;

/// Where a survey's fold stands: contacts by sequence number (`NIL`: none).
#[derive(Clone, Copy)]
pub(super) struct Fold {
    /// The customer's latest candidate (surveys without a ticket id).
    pub(super) latest: u32,
    pub(super) chosen: u32,
}

/// A settled survey a late contact can still re-credit.
pub(crate) struct Revisable {
    pub(super) pending: Pending,
    pub(super) chain: Chain,
}

/// A survey's answers so far.
#[derive(Clone)]
pub(crate) struct Chain {
    pub(super) fold: Fold,
    /// The handling (segments) of each answer, the first answer first, consecutive repeats
    /// collapsed (`NIL`: unattributed): the segments its rows have named.
    pub(super) handlings: Vec<u32>,
    /// How many times the chosen contact changed (the fact's revision).
    pub(super) steps: u32,
}

impl Chain {
    /// Records the chosen contact's handling after a change; whether the segments changed.
    fn record(&mut self, handling: u32) -> bool {
        self.steps = self.steps.saturating_add(1);
        if self.handlings.last() == Some(&handling) {
            return false;
        }
        self.handlings.push(handling);
        true
    }
}

fn key(c: &Contact) -> (i64, &str) {
    (c.ended_at_ms, c.interaction_id.as_str())
}

/// Revisable surveys kept per customer (the oldest become final early): every late contact
/// of a customer is checked against its customer's, so this bounds a contact's work.
const MAX_REVISABLE_PER_CUSTOMER: usize = 1_000;

/// The candidate window of a survey: `[lo, deadline]`.
fn bounds(p: &Pending, cfg: &JoinConfig) -> (i64, i64) {
    let t = p.survey.submitted_at_ms;
    let lo = p.lo_ms.max(t.saturating_sub(cfg.lookback_ms));
    (lo, t.saturating_add(cfg.max_wait_ms))
}

/// The contact stream's revision floor, from its floor (both trail its maximum).
pub(super) fn revision_floor(floor: i64, cfg: &JoinConfig) -> i64 {
    if floor == i64::MIN {
        return i64::MIN;
    }
    floor
        .saturating_add(cfg.floor_lag_ms)
        .saturating_sub(cfg.revise_ms)
}

impl JoinState {
    /// Parks a survey until the contact stream passes its deadline. When the pending map
    /// is full the oldest survey is settled early (returned) so memory stays bounded.
    pub fn park(&mut self, p: Pending, cfg: &JoinConfig) -> Option<Settled> {
        let seq = self.next_survey;
        self.next_survey += 1;
        let deadline = p.survey.submitted_at_ms.saturating_add(cfg.max_wait_ms);
        self.pending.insert((deadline, seq), p);
        if self.pending.len() > cfg.max_pending {
            let (k, p) = self.pending.pop_first()?;
            return Some(self.settle(k, p, cfg, true, i64::MIN));
        }
        None
    }

    /// Settles every survey whose deadline is below the contact stream's floor, then forgets
    /// the revisable ones the revision floor has passed.
    pub fn resolve_until(&mut self, contact_floor: i64, cfg: &JoinConfig) -> Vec<Settled> {
        let rfloor = revision_floor(contact_floor, cfg);
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 >= contact_floor {
                break;
            }
            let (k, p) = entry.remove_entry();
            out.push(self.settle(k, p, cfg, false, rfloor));
        }
        while let Some(entry) = self.revisable.first_entry() {
            if entry.key().0 >= rfloor {
                break;
            }
            let (k, r) = entry.remove_entry();
            self.unindex(&r.pending.survey.customer_id, k);
        }
        out
    }

    /// Settles, forced, every survey submitted before `t_ms` (their windows are closing
    /// early at the open-row cap); pending is ordered by deadline, so by submission time.
    pub fn force_before(&mut self, t_ms: i64, cfg: &JoinConfig) -> Vec<Settled> {
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().survey.submitted_at_ms >= t_ms {
                break;
            }
            let (k, p) = entry.remove_entry();
            out.push(self.settle(k, p, cfg, true, i64::MIN));
        }
        out
    }

    /// Every pending survey attributed with the contacts held now, left pending (end of a
    /// bounded run: what the input so far says).
    pub fn refresh(&self, cfg: &JoinConfig) -> Vec<Settled> {
        self.pending
            .values()
            .map(|p| {
                let (chain, _) = self.chain(p, cfg, false);
                self.settled(p.clone(), &chain, cfg, false, true, false)
            })
            .collect()
    }

    /// The input is complete (`run --until-end --final`): every pending survey settles with
    /// every candidate it has, and nothing stays revisable.
    pub fn settle_all_final(&mut self, cfg: &JoinConfig) -> Vec<Settled> {
        let pending = std::mem::take(&mut self.pending);
        let out = pending
            .into_iter()
            .map(|(k, p)| self.settle(k, p, cfg, false, i64::MAX))
            .collect();
        self.revisable.clear();
        self.by_customer.clear();
        out
    }

    /// Deadline of the oldest revisable survey: the contacts it can reach stay held.
    pub fn earliest_revisable_deadline(&self) -> Option<i64> {
        self.revisable.keys().next().map(|k| k.0)
    }

    /// A survey's first answer and the revisions by candidates that arrived since, kept
    /// revisable while the revision floor (`rfloor`) has not passed its deadline.
    fn settle(
        &mut self,
        k: (i64, u64),
        p: Pending,
        cfg: &JoinConfig,
        forced: bool,
        rfloor: i64,
    ) -> Settled {
        let (chain, capped) = self.chain(&p, cfg, forced);
        let rewrite = p.late || chain.handlings.len() > 1;
        let out = self.settled(p.clone(), &chain, cfg, forced, true, rewrite);
        if capped {
            self.final_early = self.final_early.saturating_add(1);
        } else if k.0 >= rfloor {
            let of_customer = self
                .by_customer
                .entry(CompactString::from(p.survey.customer_id.as_str()))
                .or_default();
            of_customer.push(k);
            // A late contact scans its customer's revisable surveys: at most this many.
            let oldest = (of_customer.len() > MAX_REVISABLE_PER_CUSTOMER).then(|| of_customer[0]);
            self.revisable.insert(k, Revisable { pending: p, chain });
            if let Some(oldest) = oldest {
                self.make_final(oldest);
            }
            if self.revisable.len() > cfg.max_revisable {
                if let Some(&oldest) = self.revisable.keys().next() {
                    self.make_final(oldest);
                }
            }
        }
        out
    }

    fn unindex(&mut self, customer: &str, k: (i64, u64)) {
        if let Some(v) = self.by_customer.get_mut(customer) {
            v.retain(|x| *x != k);
            if v.is_empty() {
                self.by_customer.remove(customer);
            }
        }
    }

    /// Whether `c` lies in a survey's window and, with a ticket id, belongs to that ticket
    /// (the caller picks contacts of the survey's own customer).
    fn in_range(&self, s: &Survey, (lo, hi): (i64, i64), c: &Contact) -> bool {
        c.ended_at_ms >= lo
            && c.ended_at_ms <= hi
            && s.ticket_id
                .as_deref()
                .is_none_or(|t| self.tickets.get(c.ticket).is_some_and(|x| x.id == t))
    }

    /// A survey's answers, folding its candidates in arrival order: those that arrived
    /// before the floor passed its deadline at once (or all held ones, `forced`), then one
    /// step per later candidate, at most `max_revisions` (then `true`: final at the cap).
    fn chain(&self, p: &Pending, cfg: &JoinConfig, forced: bool) -> (Chain, bool) {
        let mut chain = Chain {
            fold: Fold {
                latest: NIL,
                chosen: NIL,
            },
            handlings: Vec::new(),
            steps: 0,
        };
        let b = bounds(p, cfg);
        let mut capped = false;
        for seq in self.in_arrival_order(&p.survey) {
            let Some(c) = self.contact(seq) else { continue };
            let base = forced || c.floor_at_arrival <= b.1;
            if !base && chain.handlings.is_empty() {
                chain.handlings.push(self.handling_of(chain.fold.chosen));
            }
            if !base && revision_floor(c.floor_at_arrival, cfg) > b.1 {
                break;
            }
            if !base && chain.steps >= cfg.max_revisions {
                capped = true;
                break;
            }
            if self.in_range(&p.survey, b, c)
                && self.step(&mut chain.fold, &p.survey, b, seq, cfg)
                && !base
            {
                chain.record(self.handling_of(chain.fold.chosen));
            }
        }
        if chain.handlings.is_empty() {
            chain.handlings.push(self.handling_of(chain.fold.chosen));
        }
        (chain, capped)
    }

    /// The survey's customer's contacts in arrival order: of its ticket (the ticket's chain,
    /// usually a few) or all of them (a survey without a ticket id).
    fn in_arrival_order(&self, s: &Survey) -> Vec<u32> {
        let Some(customer) = self.customers.find(&s.customer_id) else {
            return Vec::new();
        };
        let Some(t) = s.ticket_id.as_deref() else {
            return self
                .customers
                .get(customer)
                .map_or_else(Vec::new, |c| c.contacts.iter().copied().collect());
        };
        let mut out = Vec::new();
        let mut cur = self
            .tickets
            .find(t)
            .and_then(|x| self.tickets.get(x))
            .map_or(NIL, |x| x.head);
        while let Some(c) = self.contact(cur) {
            if c.customer == customer {
                out.push(cur);
            }
            cur = c.next_in_ticket;
        }
        out.reverse();
        out
    }

    /// Folds one more candidate in; whether the chosen contact changed.
    fn step(&self, f: &mut Fold, s: &Survey, b: (i64, i64), seq: u32, cfg: &JoinConfig) -> bool {
        let Some(c) = self.contact(seq) else {
            return false;
        };
        let before = f.chosen;
        let chosen = self.contact(f.chosen);
        match (s.ticket_id.is_some(), cfg.policy) {
            (true, AttributionPolicy::Last) => {
                if chosen.is_none_or(|x| key(c) >= key(x)) {
                    f.chosen = seq;
                }
            }
            (true, AttributionPolicy::First) => {
                if chosen.is_none_or(|x| key(c) < key(x)) {
                    f.chosen = seq;
                }
            }
            (false, policy) => {
                let latest = self.contact(f.latest);
                if latest.is_none_or(|l| key(c) >= key(l)) {
                    let new_ticket = latest.is_none_or(|l| l.ticket != c.ticket);
                    f.latest = seq;
                    if policy == AttributionPolicy::Last {
                        f.chosen = seq;
                    } else if new_ticket {
                        f.chosen = self.first_of_ticket(s, b, c, seq);
                    }
                } else if policy == AttributionPolicy::First
                    && latest.is_some_and(|l| l.ticket == c.ticket)
                    && chosen.is_none_or(|x| key(c) < key(x))
                {
                    f.chosen = seq;
                }
            }
        }
        f.chosen != before
    }

    /// The earliest candidate of `c`'s ticket among the customer's contacts that arrived up
    /// to `c` (policy "first", when the customer's latest ticket changes).
    fn first_of_ticket(&self, s: &Survey, b: (i64, i64), c: &Contact, upto: u32) -> u32 {
        let upto_at = upto.wrapping_sub(self.front_seq);
        let Some(customer) = self.customers.get(c.customer) else {
            return upto;
        };
        let mut best = upto;
        for &seq in &customer.contacts {
            if seq.wrapping_sub(self.front_seq) > upto_at {
                break;
            }
            let Some(x) = self.contact(seq) else { continue };
            let earlier = self.contact(best).is_none_or(|bx| key(x) < key(bx));
            if x.ticket == c.ticket && self.in_range(s, b, x) && earlier {
                best = seq;
            }
        }
        best
    }

    /// Late contact `seq` folded into every revisable survey of its customer it is a
    /// candidate for; each survey whose answer changed is pushed to `out`.
    pub(super) fn revise_with(&mut self, seq: u32, cfg: &JoinConfig, out: &mut Vec<Settled>) {
        let Some(c) = self.contact(seq) else { return };
        let Some(customer) = self.customers.get(c.customer) else {
            return;
        };
        let Some(keys) = self.by_customer.get(customer.id.as_str()) else {
            return;
        };
        let rfloor_at = revision_floor(c.floor_at_arrival, cfg);
        let ended = c.ended_at_ms;
        let keys: Vec<(i64, u64)> = keys
            .iter()
            .copied()
            .filter(|k| rfloor_at <= k.0 && ended <= k.0)
            .collect();
        for k in keys {
            let Some(mut chain) = self.revisable.get(&k).map(|r| r.chain.clone()) else {
                continue;
            };
            let stale = [chain.fold.latest, chain.fold.chosen]
                .iter()
                .any(|&s| s != NIL && self.contact(s).is_none());
            if stale {
                // The contact cap pushed out what it was folded from: final as it stands.
                self.make_final(k);
                continue;
            }
            let (Some(r), Some(c)) = (self.revisable.get(&k), self.contact(seq)) else {
                continue;
            };
            let b = bounds(&r.pending, cfg);
            if !self.in_range(&r.pending.survey, b, c)
                || !self.step(&mut chain.fold, &r.pending.survey, b, seq, cfg)
            {
                continue;
            }
            let rewrite = chain.record(self.handling_of(chain.fold.chosen));
            let pending = r.pending.clone();
            out.push(self.settled(pending, &chain, cfg, false, false, rewrite));
            if chain.steps >= cfg.max_revisions {
                self.make_final(k);
            } else if let Some(r) = self.revisable.get_mut(&k) {
                r.chain = chain;
            }
        }
    }

    /// Forgets a revisable survey before the revision floor passes it (a cap), counted.
    fn make_final(&mut self, k: (i64, u64)) {
        if let Some(r) = self.revisable.remove(&k) {
            self.unindex(&r.pending.survey.customer_id, k);
            self.final_early = self.final_early.saturating_add(1);
        }
    }

    fn handling_of(&self, seq: u32) -> u32 {
        self.contact(seq).map_or(NIL, |c| c.handling)
    }

    /// The handling fields of an interned handling, as an attribution that names segments.
    pub(super) fn segments_of(&self, handling: u32) -> Option<Attribution> {
        let h = self.handlings.get(handling as usize)?;
        Some(Attribution {
            interaction_id: String::new(),
            ticket_id: String::new(),
            agent_id: h.agent_id.to_string(),
            team: h.team.to_string(),
            channel: h.channel.to_string(),
            bucket: h.bucket.to_string(),
            category: h.category.to_string(),
            product: h.product.as_deref().map(str::to_owned),
            matched_by: MatchKind::Ticket,
        })
    }

    fn attribution(&self, p: &Pending, seq: u32) -> Option<Attribution> {
        let how = if p.survey.ticket_id.is_some() {
            MatchKind::Ticket
        } else {
            MatchKind::Customer
        };
        self.owned(self.contact(seq)?, how)
    }

    /// A survey's answer as output: at its settlement (`first`) or after a revision;
    /// `rewrite` when its own correction rows must be (re)written.
    fn settled(
        &self,
        pending: Pending,
        chain: &Chain,
        cfg: &JoinConfig,
        forced: bool,
        first: bool,
        rewrite: bool,
    ) -> Settled {
        let attribution = self.attribution(&pending, chain.fold.chosen);
        let other_customer = attribution.is_none() && self.other_customer(&pending, cfg);
        let earlier = chain.handlings.len().saturating_sub(1);
        let mut answers: Vec<Option<Attribution>> = chain.handlings[..earlier]
            .iter()
            .map(|&h| self.segments_of(h))
            .collect();
        answers.push(attribution.clone());
        Settled {
            pending,
            attribution,
            forced,
            answers,
            first,
            other_customer,
            revision: chain.steps,
            rewrite,
        }
    }

    /// Whether a survey's ticket has contacts in its window, all of other customers.
    fn other_customer(&self, p: &Pending, cfg: &JoinConfig) -> bool {
        let Some(t) = p.survey.ticket_id.as_deref() else {
            return false;
        };
        let Some(ticket) = self.tickets.find(t).and_then(|x| self.tickets.get(x)) else {
            return false;
        };
        let (lo, hi) = bounds(p, cfg);
        let mut cur = ticket.head;
        while let Some(c) = self.contact(cur) {
            let other = self
                .customers
                .get(c.customer)
                .is_some_and(|cu| cu.id != p.survey.customer_id);
            if c.ended_at_ms >= lo && c.ended_at_ms <= hi && other {
                return true;
            }
            cur = c.next_in_ticket;
        }
        false
    }
}
