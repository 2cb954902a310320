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
    /// Longest id or segment value, in bytes: each is held in state (ids hashed, segment
    /// values interned per open window row), so its size must not be the producer's choice.
    pub max_key_bytes: usize,
    /// Longest survey comment, in bytes: a pending survey holds its comment until it
    /// settles, so this times the pending cap bounds that memory.
    pub max_comment_bytes: usize,
    /// Open window rows one partition may hold; past it the oldest close early.
    pub max_open_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_future_skew_ms: 3_600_000,
            min_event_ms: 946_684_800_000, // 2000-01-01
            max_duration_ms: 86_400_000,
            max_ids: 5_000_000,
            max_key_bytes: 256,
            max_comment_bytes: 16_384,
            max_open_rows: 1_000_000,
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
    too_long(ev, l.max_key_bytes)?;
    if let Event::Survey(s) = ev {
        let n = s.comment.as_deref().map_or(0, str::len);
        if n > l.max_comment_bytes {
            return Err(Reject {
                reason: "too_long",
                detail: format!(
                    "comment is {n} bytes, over ingest.max_comment_bytes ({})",
                    l.max_comment_bytes
                ),
            });
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

/// Ids and segment values no longer than `max` bytes; the detail names the field and its
/// length, never the value.
fn too_long(ev: &Event, max: usize) -> Result<(), Reject> {
    fn o(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }
    // Fixed arrays, not a Vec: this runs for every event.
    let first_over = |fields: &[(&'static str, &str)]| {
        fields
            .iter()
            .find(|(_, v)| v.len() > max)
            .map(|&(name, v)| (name, v.len()))
    };
    let over = match ev {
        Event::Survey(s) => first_over(&[
            ("response_id", &s.response_id),
            ("customer_id", &s.customer_id),
            ("ticket_id", o(&s.ticket_id)),
            ("survey_channel", &s.survey_channel),
            ("region", o(&s.region)),
            ("product", o(&s.product)),
            ("customer_tier", o(&s.customer_tier)),
        ]),
        Event::Interaction(i) => first_over(&[
            ("interaction_id", &i.interaction_id),
            ("ticket_id", &i.ticket_id),
            ("customer_id", &i.customer_id),
            ("agent_id", &i.agent_id),
            ("team", &i.team),
            ("channel", &i.channel),
            ("bucket", &i.bucket),
            ("category", &i.category),
            ("product", o(&i.product)),
        ]),
    };
    match over {
        Some((name, len)) => Err(Reject {
            reason: "too_long",
            detail: format!("{name} is {len} bytes, over ingest.max_key_bytes ({max})"),
        }),
        None => Ok(()),
    }
}
