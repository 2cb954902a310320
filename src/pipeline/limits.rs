//! What a decoded event must satisfy before it may move a clock or count (docs/SEMANTICS.md:
//! "What is rejected"), and the reason a message is rejected. Pure: the ingest step applies
//! it, the `[ingest]` config section fills it.

use crate::model::Event;

/// What a decoded event must satisfy before it may move a clock or count.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_future_skew_ms: i64,
    pub min_event_ms: i64,
    pub max_duration_ms: i64,
    pub max_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_future_skew_ms: 3_600_000,
            min_event_ms: 946_684_800_000, // 2000-01-01
            max_duration_ms: 86_400_000,
            max_ids: 5_000_000,
        }
    }
}

/// The latest instant a ClickHouse `DateTime` holds (2106-02-07T06:28:15Z); later event
/// times would be clamped there silently.
pub const MAX_EVENT_MS: i64 = 4_294_967_295_000;

/// Why a message goes to the dead-letter path; `detail` never quotes a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: &'static str,
    pub detail: String,
}

/// Checks an event against the limits: its time within range, its durations bounded.
pub fn check(ev: &Event, record_ms: Option<i64>, l: &Limits) -> Result<(), Reject> {
    let (field, t) = match ev {
        Event::Survey(s) => ("submitted_at", s.submitted_at_ms),
        Event::Interaction(i) => ("ended_at", i.ended_at_ms),
    };
    let out_of_range = |why: String| Reject {
        reason: "event_time_out_of_range",
        detail: format!("{field} = {t} ms {why}"),
    };
    if t < l.min_event_ms {
        return Err(out_of_range(format!(
            "is before ingest.min_event_time ({} ms)",
            l.min_event_ms
        )));
    }
    if t > MAX_EVENT_MS {
        return Err(out_of_range(
            "is after 2106-02-07, past any window ClickHouse can store".into(),
        ));
    }
    if let Some(r) = record_ms.filter(|&r| r > 0) {
        if t > r.saturating_add(l.max_future_skew_ms) {
            return Err(out_of_range(format!(
                "is {} s ahead of its Kafka record's timestamp {r} ms (ingest.max_future_skew = {} s)",
                t.saturating_sub(r) / 1000,
                l.max_future_skew_ms / 1000
            )));
        }
    }
    if let Event::Interaction(i) = ev {
        for (name, v) in [
            ("talk_ms", i.talk_ms),
            ("hold_ms", i.hold_ms),
            ("wrap_ms", i.wrap_ms),
        ] {
            if v > l.max_duration_ms {
                return Err(Reject {
                    reason: "out_of_range",
                    detail: format!(
                        "{name} = {v} exceeds ingest.max_duration ({} ms)",
                        l.max_duration_ms
                    ),
                });
            }
        }
    }
    Ok(())
}
