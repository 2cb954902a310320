//! Survey-to-contact join state for one partition pair.
//!
//! Semantics (deterministic, so a replay or an offline recomputation gets the same answer):
//! a survey submitted at `t` is attributed among the accepted contacts with
//! `ended_at` in `[t - lookback, t + max_wait]` that arrived before the contact stream's
//! floor passed `t + max_wait`: by its ticket id when it has one, else via the customer's
//! most recent contact's ticket. Among that ticket's contacts the policy picks the last (or
//! first) by `(ended_at, interaction_id)`. A survey waits until the contact floor passes
//! `t + max_wait`; every contact arriving later is excluded by the arrival rule whatever the
//! interleaving of the two topics, so the answer is a function of each topic's order. Contacts no pending or future survey can
//! reach are evicted; both maps have hard caps whose overflow is counted.
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
}

/// A survey whose attribution is settled (or, at the end of a bounded run, provisional).
#[derive(Debug)]
pub struct Resolved {
    pub survey: Survey,
    pub attribution: Option<Attribution>,
    /// Settled before its wait was over because the pending map was full.
    pub forced: bool,
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

/// A pending survey with its answer.
#[derive(Debug)]
pub struct Settled {
    pub pending: Pending,
    pub attribution: Option<Attribution>,
    pub forced: bool,
}

pub use store::JoinState;

#[cfg(test)]
mod tests;
