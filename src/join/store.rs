//! The join's memory layout. An open ticket must cost little (the lookback is days), so:
//! - contacts live in one ring in arrival order, addressed by a 32-bit sequence number, and
//!   are evicted from the front (arrival order is event order up to the out-of-orderness, and
//!   a contact kept a little longer can never change an answer: attribution filters by time);
//! - ids are stored inline (up to 24 bytes without a heap allocation);
//! - who handled a contact (agent, team, channel, bucket, category, product) is interned;
//! - a ticket is its id plus the head of its contact chain; a customer its id plus a ring of
//!   its contacts' sequence numbers.
//!
//! Checkpoints store contacts by value (strings), so they do not depend on these ids.

mod revise;
mod saved;

use super::chunked::{ById, Named, Ring};
use super::{AttributionPolicy, JoinConfig, Pending, Settled};
use crate::model::{Attribution, Interaction, MatchKind};
use compact_str::CompactString;
use hashbrown::HashTable;
use revise::Revisable;
use rustc_hash::FxBuildHasher;
use rustc_hash::FxHashMap;
pub use saved::SavedRevisable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;

const NIL: u32 = u32::MAX;

struct Contact {
    ended_at_ms: i64,
    interaction_id: CompactString,
    handling: u32,
    ticket: u32,
    customer: u32,
    /// Next (older) contact of the same ticket, by sequence number.
    next_in_ticket: u32,
    /// The contact stream's floor just before this contact arrived: surveys whose deadline
    /// it had already passed were settled without it, whatever the interleaving.
    floor_at_arrival: i64,
}

struct Ticket {
    id: CompactString,
    /// Newest contact of the ticket.
    head: u32,
}

struct Customer {
    id: CompactString,
    contacts: VecDeque<u32>,
}

/// agent, team, channel, bucket, category, product.
type HandlingKey<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, Option<&'a str>);

/// Interned handling attributes, shared by every contact with the same values.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Handling {
    agent_id: Box<str>,
    team: Box<str>,
    channel: Box<str>,
    bucket: Box<str>,
    category: Box<str>,
    product: Option<Box<str>>,
}

impl Named for Ticket {
    fn name(&self) -> &str {
        &self.id
    }
}

impl Named for Customer {
    fn name(&self) -> &str {
        &self.id
    }
}

impl Handling {
    fn key(&self) -> HandlingKey<'_> {
        (
            &self.agent_id,
            &self.team,
            &self.channel,
            &self.bucket,
            &self.category,
            self.product.as_deref(),
        )
    }
}

#[derive(Default)]
pub struct JoinState {
    /// Arrival order; `contacts[k]` has sequence number `front_seq + k` (wrapping).
    contacts: Ring<Contact>,
    front_seq: u32,
    tickets: ById<Ticket>,
    customers: ById<Customer>,
    handlings: Vec<Handling>,
    handling_index: HashTable<u32>,
    /// Keyed by (deadline = submitted_at + max_wait, arrival seq).
    pending: BTreeMap<(i64, u64), Pending>,
    next_survey: u64,
    /// Settled surveys a late contact can still re-credit, by the same key (revise.rs).
    revisable: BTreeMap<(i64, u64), Revisable>,
    /// Keys of `revisable` by customer id: a late contact finds the surveys it may revise.
    by_customer: FxHashMap<CompactString, Vec<(i64, u64)>>,
    /// Revisable surveys made final early (caps) since the last take; not checkpointed.
    final_early: u64,
}

impl JoinState {
    pub fn contacts_len(&self) -> usize {
        self.contacts.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes held, from what the containers have allocated: contacts, tickets and
    /// customers in whole chunks with their indexes, the customers' rings of contacts
    /// (counted at the 1.5x slack a doubling ring averages), interned handlings, and pending
    /// surveys at a typical 400 bytes and revisable ones at the 630 the state benchmark
    /// measures (a comment adds up to ingest.max_comment_bytes). Ids
    /// longer than 24 bytes, stored on the heap, are not counted.
    pub fn bytes(&self) -> usize {
        let rings = self
            .contacts
            .len()
            .saturating_mul(6)
            .saturating_add(self.customers.len().saturating_mul(16));
        let handlings = self
            .handlings
            .capacity()
            .saturating_mul(std::mem::size_of::<Handling>() + 64)
            .saturating_add(self.handling_index.capacity().saturating_mul(8) / 7 * 5);
        self.contacts
            .allocated_bytes()
            .saturating_add(self.tickets.allocated_bytes())
            .saturating_add(self.customers.allocated_bytes())
            .saturating_add(rings)
            .saturating_add(handlings)
            .saturating_add(self.pending.len().saturating_mul(400))
            .saturating_add(self.revisable.len().saturating_mul(630))
    }

    /// Settled surveys still revisable.
    pub fn revisable_len(&self) -> usize {
        self.revisable.len()
    }

    /// Revisable surveys made final early by a cap since the last call.
    pub fn take_final_early(&mut self) -> u64 {
        std::mem::take(&mut self.final_early)
    }

    /// Tickets with at least one contact held.
    pub fn tickets_len(&self) -> usize {
        self.tickets.len()
    }

    /// Submission time of the oldest survey still waiting, which holds back window closing.
    pub fn earliest_pending_ms(&self) -> Option<i64> {
        self.pending
            .values()
            .next()
            .map(|p| p.survey.submitted_at_ms)
    }

    fn contact(&self, seq: u32) -> Option<&Contact> {
        self.contacts.get(seq.wrapping_sub(self.front_seq) as usize)
    }

    fn contact_mut(&mut self, seq: u32) -> Option<&mut Contact> {
        self.contacts
            .get_mut(seq.wrapping_sub(self.front_seq) as usize)
    }

    fn handling(&mut self, i: &Interaction) -> u32 {
        self.intern((
            &i.agent_id,
            &i.team,
            &i.channel,
            &i.bucket,
            &i.category,
            i.product.as_deref(),
        ))
    }

    fn intern(&mut self, key: HandlingKey<'_>) -> u32 {
        let h = FxBuildHasher.hash_one(key);
        let handlings = &self.handlings;
        if let Some(&id) = self
            .handling_index
            .find(h, |&id| handlings[id as usize].key() == key)
        {
            return id;
        }
        let id = self.handlings.len() as u32;
        self.handlings.push(Handling {
            agent_id: key.0.into(),
            team: key.1.into(),
            channel: key.2.into(),
            bucket: key.3.into(),
            category: key.4.into(),
            product: key.5.map(Into::into),
        });
        let handlings = &self.handlings;
        self.handling_index.insert_unique(h, id, |&id| {
            FxBuildHasher.hash_one(handlings[id as usize].key())
        });
        id
    }

    /// Indexes an accepted contact; surveys it re-credits are pushed to `revised`. Returns
    /// how many contacts the cap pushed out.
    pub fn add_contact(
        &mut self,
        i: &Interaction,
        floor_at_arrival: i64,
        cfg: &JoinConfig,
        revised: &mut Vec<Settled>,
    ) -> usize {
        let seq = self.front_seq.wrapping_add(self.contacts.len() as u32);
        let handling = self.handling(i);
        let ticket = self.tickets.find_or_insert(&i.ticket_id, || Ticket {
            id: CompactString::from(i.ticket_id.as_str()),
            head: NIL,
        });
        let customer = self.customers.find_or_insert(&i.customer_id, || Customer {
            id: CompactString::from(i.customer_id.as_str()),
            contacts: VecDeque::new(),
        });
        let next_in_ticket = self.tickets.get(ticket).map_or(NIL, |t| t.head);
        if let Some(t) = self.tickets.get_mut(ticket) {
            t.head = seq;
        }
        if let Some(c) = self.customers.get_mut(customer) {
            c.contacts.push_back(seq);
        }
        self.contacts.push_back(Contact {
            ended_at_ms: i.ended_at_ms,
            interaction_id: CompactString::from(i.interaction_id.as_str()),
            handling,
            ticket,
            customer,
            next_in_ticket,
            floor_at_arrival,
        });
        self.revise_with(seq, cfg, revised);
        let mut evicted = 0;
        while self.contacts.len() > cfg.max_contacts && self.pop_front() {
            evicted += 1;
        }
        evicted
    }

    /// Removes the oldest-arrived contact and unlinks it.
    fn pop_front(&mut self) -> bool {
        let seq = self.front_seq;
        let Some(c) = self.contacts.pop_front() else {
            return false;
        };
        self.front_seq = self.front_seq.wrapping_add(1);
        // Unlink from the ticket chain (newest first; the evicted one is usually last).
        let head = self.tickets.get(c.ticket).map_or(NIL, |t| t.head);
        if head == seq {
            if let Some(t) = self.tickets.get_mut(c.ticket) {
                t.head = c.next_in_ticket;
            }
        } else {
            let mut cur = head;
            while let Some(x) = self.contact(cur) {
                if x.next_in_ticket == seq {
                    let next = c.next_in_ticket;
                    if let Some(x) = self.contact_mut(cur) {
                        x.next_in_ticket = next;
                    }
                    break;
                }
                cur = x.next_in_ticket;
            }
        }
        if self.tickets.get(c.ticket).is_some_and(|t| t.head == NIL) {
            self.tickets.remove(c.ticket);
        }
        let now_empty = self.customers.get_mut(c.customer).is_some_and(|cu| {
            if cu.contacts.front() == Some(&seq) {
                cu.contacts.pop_front();
            } else {
                cu.contacts.retain(|&s| s != seq);
            }
            cu.contacts.is_empty()
        });
        if now_empty {
            self.customers.remove(c.customer);
        }
        true
    }

    /// Drops contacts older than `floor` from the front of the arrival order; callers pass
    /// the oldest survey time that can still need one, minus the lookback.
    pub fn evict_before(&mut self, floor: i64) {
        while self.contacts.front().is_some_and(|c| c.ended_at_ms < floor) {
            self.pop_front();
        }
    }

    /// A held contact as owned strings: the attribution it gives, and its checkpoint form.
    fn owned(&self, c: &Contact, matched_by: MatchKind) -> Option<Attribution> {
        Some(Attribution {
            interaction_id: c.interaction_id.to_string(),
            ticket_id: self.tickets.get(c.ticket)?.id.to_string(),
            matched_by,
            ..self.segments_of(c.handling)?
        })
    }
}

/// A held contact by value, for checkpoints.
#[derive(Serialize, Deserialize)]
struct SavedContact {
    /// Everything but the customer and the time (`matched_by` means nothing here).
    held: Attribution,
    customer_id: String,
    ended_at_ms: i64,
    floor_at_arrival: i64,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    contacts: Vec<SavedContact>,
    pending: Vec<((i64, u64), Pending)>,
    next_survey: u64,
}

impl Serialize for JoinState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let contacts = self
            .contacts
            .iter()
            .filter_map(|c| {
                Some(SavedContact {
                    held: self.owned(c, MatchKind::Ticket)?,
                    customer_id: self.customers.get(c.customer)?.id.to_string(),
                    ended_at_ms: c.ended_at_ms,
                    floor_at_arrival: c.floor_at_arrival,
                })
            })
            .collect();
        Saved {
            contacts,
            pending: self.pending.iter().map(|(k, p)| (*k, p.clone())).collect(),
            next_survey: self.next_survey,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for JoinState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let saved = Saved::deserialize(d)?;
        let mut j = JoinState::default();
        let no_cap = JoinConfig {
            policy: AttributionPolicy::Last,
            lookback_ms: 0,
            max_wait_ms: 0,
            max_contacts: usize::MAX,
            max_pending: usize::MAX,
            revise_ms: 0,
            floor_lag_ms: 0,
            max_revisable: usize::MAX,
            max_revisions: u32::MAX,
        };
        for c in saved.contacts {
            let h = c.held;
            j.add_contact(
                &Interaction {
                    interaction_id: h.interaction_id,
                    ticket_id: h.ticket_id,
                    customer_id: c.customer_id,
                    agent_id: h.agent_id,
                    team: h.team,
                    channel: h.channel,
                    bucket: h.bucket,
                    category: h.category,
                    product: h.product,
                    started_at_ms: c.ended_at_ms,
                    ended_at_ms: c.ended_at_ms,
                    talk_ms: 0,
                    hold_ms: 0,
                    wrap_ms: 0,
                    resolved: false,
                },
                c.floor_at_arrival,
                &no_cap,
                &mut Vec::new(),
            );
        }
        j.pending = saved.pending.into_iter().collect();
        j.next_survey = saved.next_survey;
        Ok(j)
    }
}
