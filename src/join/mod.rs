//! Survey-to-contact join state for one partition pair.
//!
//! Semantics (docs/SEMANTICS.md, "Join" and "Settled, revised, final"): a survey is
//! attributed among its customer's contacts in `[t - lookback, t + max_wait]` that arrived
//! before the contact stream's revision floor passed `t + max_wait`, by its ticket id or its
//! customer's latest contact's ticket, then the ticket's last (or first) contact. It settles
//! when the contact floor passes `t + max_wait` with the candidates that arrived by then (a
//! prefix of the contact topic), and each later candidate that changes the answer is one
//! revision. The chain of answers is therefore a function of each topic's order, whatever
//! the interleaving, and its end is a function of the set of accepted contacts. Contacts no
//! pending, revisable or future survey can reach are evicted; every map has a hard cap whose
//! overflow is counted.
//!
//! The state is laid out for memory (see `store.rs`): contacts in arrival order in one ring,
//! ids inline, and who-handled-it interned, which keeps an open ticket under 150 bytes.

mod chunked;
mod store;

use crate::model::Attribution;
use crate::model::Survey;
use serde::{Deserialize, Serialize};

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
    /// `join.revise_horizon`: a contact revises surveys whose deadline the contact stream's
    /// maximum minus this had not passed when it arrived.
    pub revise_ms: i64,
    /// out_of_orderness + allowed_lateness: the contact floor is the maximum minus this.
    pub floor_lag_ms: i64,
    pub max_revisable: usize,
    /// `join.max_revisions_per_survey`: a survey re-credited this often is final.
    pub max_revisions: u32,
}

/// A survey whose attribution is settled (or, at the end of a bounded run, provisional).
#[derive(Debug)]
pub struct Resolved {
    pub survey: Survey,
    pub attribution: Option<Attribution>,
    /// Settled before its wait was over because the pending map was full.
    pub forced: bool,
    /// Unattributed although its ticket had contacts in range, all of other customers.
    pub other_customer: bool,
}

/// A survey waiting for the contact stream to pass its deadline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub survey: Survey,
    pub offset: i64,
    /// Behind its stream's floor on arrival: counted in correction rows once settled, never
    /// in the window's own row.
    pub late: bool,
    /// Oldest contact end it may match: the survey stream's floor on arrival (or its own
    /// time, if later) minus the lookback. Contacts before that may already be evicted.
    pub lo_ms: i64,
}

/// A survey's answer: at settlement (`first`), or after a late contact changed it.
#[derive(Debug)]
pub struct Settled {
    pub pending: Pending,
    /// The current answer (the last of `answers`).
    pub attribution: Option<Attribution>,
    pub forced: bool,
    /// The segments of every answer so far, the first answer first, consecutive repeats
    /// collapsed: more than one means moved. Only the handling fields are filled in for the
    /// earlier ones (they name the segments to rewrite).
    pub answers: Vec<Option<Attribution>>,
    /// This is the survey's settlement (counted once), not a later revision of it.
    pub first: bool,
    pub other_customer: bool,
    /// How many times a late contact changed the chosen contact (the fact's revision).
    pub revision: u32,
    /// The segments changed (or it is late): its own correction rows are rewritten.
    pub rewrite: bool,
}

pub use store::{JoinState, SavedRevisable};

#[cfg(test)]
mod tests;
