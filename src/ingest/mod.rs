//! The one ingest step every source runs, so the Kafka job and the embedded demo cannot
//! drift: decode, validate against the `[ingest]` limits, fold through the core (which
//! judges lateness and repeated ids per partition), and decide what goes to the
//! dead-letter path with which reason. Every counter a rejected or accepted message moves
//! is moved here.

use crate::codec::{DecodeError, Decoder, Disposition};
use crate::internal_events::{
    DeadLettered, DecodeFailed, Duplicate, InternalEvent, LateRevision, SchemaLookups, TooLate,
};
use crate::metrics::Metrics;
use crate::model::{Event, Stream};
use crate::pipeline::dedup::Repeat;
pub use crate::pipeline::limits::{check, Limits, Reject, MAX_EVENT_MS};
use crate::pipeline::partition::{Accepted, Rejected};
use crate::pipeline::Core;
use std::sync::Arc;

/// One message as a source read it.
pub struct Message<'a> {
    pub stream: Stream,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka record's timestamp, when the source has one.
    pub timestamp_ms: Option<i64>,
    pub payload: &'a [u8],
}

/// Counts of one source's run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub consumed: u64,
    pub dead_lettered: u64,
    pub late: u64,
    pub revised: u64,
    pub duplicates: u64,
}

pub struct Ingest {
    metrics: Arc<Metrics>,
    topics: [String; 2],
    pub tally: Tally,
    /// The decoder's lookup counts when last published.
    lookups: crate::codec::LookupStats,
}

impl Ingest {
    pub fn new(metrics: Arc<Metrics>, topics: [String; 2]) -> Self {
        Ingest {
            metrics,
            topics,
            tally: Tally::default(),
            lookups: Default::default(),
        }
    }

    /// Runs one message through the step. `Ok(None)`: folded. `Ok(Some(reject))`: the
    /// caller sends it to the dead-letter path. `Err`: nothing was counted; the registry is
    /// unreachable and the same message must be tried again, or it refused our credentials
    /// and the job must stop ([`DecodeError::disposition`]).
    pub fn ingest(
        &mut self,
        decoder: &mut Decoder,
        core: &mut Core,
        m: &Message<'_>,
    ) -> Result<Option<Reject>, DecodeError> {
        let decoded = decoder.decode(m.stream, m.payload);
        let lookups = decoder.lookup_stats();
        if lookups != self.lookups {
            let before = std::mem::replace(&mut self.lookups, lookups);
            SchemaLookups {
                topics: &self.topics,
                before,
                now: lookups,
            }
            .emit(&self.metrics);
        }
        let decoded = match decoded {
            Err(e) if !matches!(e.disposition(), Disposition::DeadLetter(_)) => return Err(e),
            other => other,
        };
        self.tally.consumed += 1;
        let verdict = match decoded {
            Err(e) => {
                DecodeFailed {
                    topic: &self.topics[m.stream as usize],
                    reason: e.reason(),
                }
                .emit(&self.metrics);
                Err(Reject {
                    reason: e.reason(),
                    detail: e.to_string(),
                })
            }
            Ok(ev) => match check(&ev, m.timestamp_ms, &core.settings.limits) {
                Err(r) => Err(r),
                Ok(()) => self.fold(core, m, ev),
            },
        };
        match verdict {
            Ok(()) => Ok(None),
            Err(r) => {
                // The offset is consumed either way, so the committed position moves on.
                core.skip(m.stream, m.partition, m.offset);
                self.tally.dead_lettered += 1;
                DeadLettered {
                    topic: &self.topics[m.stream as usize],
                    partition: m.partition,
                    offset: m.offset,
                    reason: r.reason,
                }
                .emit(&self.metrics);
                Ok(Some(r))
            }
        }
    }

    fn fold(&mut self, core: &mut Core, m: &Message<'_>, ev: Event) -> Result<(), Reject> {
        // Every per-topic metric is labelled with the topic's name, as cx_consumed_total is.
        let topic = self.topics[m.stream as usize].as_str();
        match core.process(m.partition, m.offset, ev, m.payload) {
            Ok(Accepted::OnTime) => Ok(()),
            Ok(Accepted::Late) => {
                self.tally.revised += 1;
                LateRevision { topic }.emit(&self.metrics);
                Ok(())
            }
            Err(Rejected::TooLate {
                event_ms,
                horizon_ms,
            }) => {
                self.tally.late += 1;
                TooLate { topic }.emit(&self.metrics);
                Err(Reject {
                    reason: "too_late",
                    detail: format!(
                        "event time {event_ms} ms is behind the partition's late horizon {horizon_ms} ms"
                    ),
                })
            }
            Err(Rejected::Duplicate(how)) => {
                self.tally.duplicates += 1;
                Duplicate { topic }.emit(&self.metrics);
                let id = match m.stream {
                    Stream::Survey => "response_id",
                    Stream::Interaction => "interaction_id",
                };
                Err(Reject {
                    reason: "duplicate",
                    detail: match how {
                        Repeat::Identical => format!("{id} already delivered (identical content); the first delivery counts"),
                        Repeat::Differs => format!("{id} already delivered with different content; the first delivery counts"),
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
