//! Decoded, validated events. Everything here already passed the codec's checks, so the
//! join and window stages can trust ids are non-empty and scores are in range.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which input stream a message came from. Both streams are co-partitioned by customer id,
/// so partition `p` of one pairs with partition `p` of the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Stream {
    Survey = 0,
    Interaction = 1,
}

impl Stream {
    pub const ALL: [Stream; 2] = [Stream::Survey, Stream::Interaction];

    pub fn label(self) -> &'static str {
        match self {
            Stream::Survey => "survey",
            Stream::Interaction => "interaction",
        }
    }

    pub fn other(self) -> Stream {
        match self {
            Stream::Survey => Stream::Interaction,
            Stream::Interaction => Stream::Survey,
        }
    }
}

/// NPS answer classes: 9-10 promoter, 7-8 passive, 0-6 detractor. The one place this rule
/// lives; windows and the Prometheus counters both use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpsClass {
    Promoter,
    Passive,
    Detractor,
}

/// Highest score that is a detractor (0-6); SQL over the facts uses the same bound.
pub const DETRACTOR_MAX: u8 = 6;
/// Lowest score that is a promoter (9-10).
pub const PROMOTER_MIN: u8 = 9;

impl NpsClass {
    pub fn of(score: u8) -> NpsClass {
        match score {
            PROMOTER_MIN.. => NpsClass::Promoter,
            s if s > DETRACTOR_MAX => NpsClass::Passive,
            _ => NpsClass::Detractor,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            NpsClass::Promoter => "promoter",
            NpsClass::Passive => "passive",
            NpsClass::Detractor => "detractor",
        }
    }
}

/// Survey channel symbols, in the order of the Avro enum.
pub const SURVEY_CHANNELS: [&str; 5] = ["EMAIL", "SMS", "IN_APP", "WEB", "PHONE"];
/// Contact channel symbols, in the order of the Avro enum.
pub const CONTACT_CHANNELS: [&str; 5] = ["PHONE", "CHAT", "EMAIL", "SOCIAL", "SELF_SERVICE"];
/// Support bucket symbols, in the order of the Avro enum.
pub const BUCKETS: [&str; 2] = ["PRE_SALES", "POST_SALES"];

/// A survey answer (see schemas/survey_response.avsc for field meanings).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Survey {
    pub response_id: String,
    pub customer_id: String,
    pub ticket_id: Option<String>,
    pub submitted_at_ms: i64,
    pub survey_channel: String,
    pub nps_score: Option<u8>,
    pub csat_score: Option<u8>,
    /// Personal data: kept out of Debug so it can never reach a log line.
    pub comment: Option<String>,
    pub region: Option<String>,
    pub product: Option<String>,
    pub customer_tier: Option<String>,
}

impl std::fmt::Debug for Survey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Survey")
            .field("response_id", &self.response_id)
            .field("customer_id", &self.customer_id)
            .field("ticket_id", &self.ticket_id)
            .field("submitted_at_ms", &self.submitted_at_ms)
            .field("nps_score", &self.nps_score)
            .field("csat_score", &self.csat_score)
            .field("comment", &self.comment.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// One completed agent contact (see schemas/support_interaction.avsc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub interaction_id: String,
    pub ticket_id: String,
    pub customer_id: String,
    pub agent_id: String,
    pub team: String,
    pub channel: String,
    pub bucket: String,
    pub category: String,
    pub product: Option<String>,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub wrap_ms: i64,
    pub resolved: bool,
}

impl Interaction {
    /// Talk + hold + wrap-up; saturates (each part is bounded by `ingest.max_duration`).
    pub fn handle_ms(&self) -> i64 {
        self.talk_ms
            .saturating_add(self.hold_ms)
            .saturating_add(self.wrap_ms)
    }
}

/// A decoded event from either stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Survey(Survey),
    Interaction(Interaction),
}

impl Event {
    pub fn event_time_ms(&self) -> i64 {
        match self {
            Event::Survey(s) => s.submitted_at_ms,
            Event::Interaction(i) => i.ended_at_ms,
        }
    }
}

/// The segment dimensions, in the fixed column order used by the window rows.
pub const DIMENSIONS: [&str; 7] = [
    "region", "channel", "team", "agent", "product", "tier", "bucket",
];

/// A dimension or grouping name that is not one of [`DIMENSIONS`] (a config error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownDimension {
    #[error("unknown dimension {0:?} (known: {known})", known = DIMENSIONS.join(", "))]
    Dimension(String),
    #[error("unknown grouping {0:?}")]
    Grouping(String),
}

/// Value used for a dimension an event does not carry (e.g. region on a contact).
pub const UNKNOWN: &str = "unknown";
/// Value of agent/team/channel/bucket for a survey the join could not attribute.
pub const UNATTRIBUTED: &str = "unattributed";

/// Dimension values of a window row, interned: shared by every row of the same segment, so
/// emitting a row costs one reference count, not seven.
pub type DimValues = Arc<[Arc<str>; 7]>;

/// Who handled the contact a survey was attributed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub interaction_id: String,
    pub ticket_id: String,
    pub agent_id: String,
    pub team: String,
    pub channel: String,
    pub bucket: String,
    pub category: String,
    pub product: Option<String>,
    /// How the match was found: by the survey's ticket id, or the customer's latest ticket.
    pub matched_by: MatchKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchKind {
    Ticket,
    Customer,
}

impl MatchKind {
    pub fn label(self) -> &'static str {
        match self {
            MatchKind::Ticket => "ticket",
            MatchKind::Customer => "customer",
        }
    }
}
