//! All state for one partition pair (partition p of both topics): stream clocks, join and
//! windows. Plain data with methods, no I/O, so it is unit-tested without a runtime and
//! checkpointed whole with its offsets.
//!
//! Lateness is judged per stream of the pair: an event earlier than its stream's horizon
//! (max event time seen - out_of_orderness - allowed_lateness) is too late. A horizon that
//! spanned all partitions would make "too late" depend on how the consumer interleaved its
//! fetches, which no replay or offline recomputation could reproduce; per pair it depends
//! only on each partition's order, which Kafka fixes.

use super::Settings;
use crate::join::{JoinState, Resolved};
use crate::model::{Interaction, Stream, Survey};
use crate::window::{WindowState, WindowUpdate};
use serde::{Deserialize, Serialize};

use super::dims;

/// Event-time progress of one stream of the pair.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct StreamClock {
    pub max_event_ms: Option<i64>,
    /// Events before this are too late. Only grows.
    pub floor_ms: i64,
    /// Next Kafka offset to fold; everything below is in this state.
    pub next_offset: i64,
}

impl Default for StreamClock {
    fn default() -> Self {
        StreamClock {
            max_event_ms: None,
            floor_ms: i64::MIN,
            next_offset: 0,
        }
    }
}

/// An event rejected because its window can no longer be revised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLate {
    pub event_ms: i64,
    pub floor_ms: i64,
}

/// A survey whose attribution is settled, ready for the fact table.
#[derive(Debug)]
pub struct SurveyFact {
    pub partition: i32,
    pub resolved: Resolved,
}

/// An accepted contact, ready for the fact table.
#[derive(Debug)]
pub struct ContactFact {
    pub partition: i32,
    pub offset: i64,
    pub interaction: Interaction,
}

/// What processing produced since the last flush.
#[derive(Debug, Default)]
pub struct Outputs {
    pub surveys: Vec<SurveyFact>,
    pub contacts: Vec<ContactFact>,
    pub windows: Vec<(i32, WindowUpdate)>,
    pub join_evicted: u64,
}

impl Outputs {
    /// Empty, with room for as much as `last` held: batches are similar in size, and
    /// growing big vectors from empty cost more than the work stored in them.
    pub fn sized_like(last: &Outputs) -> Self {
        Outputs {
            surveys: Vec::with_capacity(last.surveys.len()),
            contacts: Vec::with_capacity(last.contacts.len()),
            windows: Vec::with_capacity(last.windows.len()),
            join_evicted: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.surveys.is_empty() && self.contacts.is_empty() && self.windows.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    pub clocks: [StreamClock; 2],
    join: JoinState,
    windows: WindowState,
    /// Set by the source when a stream has been caught up and quiet for the idle timeout.
    #[serde(skip)]
    pub idle: [bool; 2],
}

impl PartitionState {
    pub fn new(partition: i32) -> Self {
        PartitionState {
            partition,
            clocks: [StreamClock::default(); 2],
            join: JoinState::default(),
            windows: WindowState::default(),
            idle: [false; 2],
        }
    }

    pub fn join(&self) -> &JoinState {
        &self.join
    }

    pub fn windows(&self) -> &WindowState {
        &self.windows
    }

    /// Every open window row, for summaries.
    pub fn window_snapshot(
        &mut self,
        st: &Settings,
    ) -> Vec<(crate::window::WindowKey, crate::window::aggregate::Partial)> {
        self.windows.snapshot(&st.window)
    }

    /// Checks lateness and moves the stream's clock. Offsets at or past `next_offset` only.
    fn accept(
        &mut self,
        stream: Stream,
        offset: i64,
        t: i64,
        st: &Settings,
    ) -> Result<(), TooLate> {
        let c = &mut self.clocks[stream as usize];
        c.next_offset = c.next_offset.max(offset + 1);
        if t < c.floor_ms {
            return Err(TooLate {
                event_ms: t,
                floor_ms: c.floor_ms,
            });
        }
        let max = c.max_event_ms.map_or(t, |m| m.max(t));
        c.max_event_ms = Some(max);
        c.floor_ms = c
            .floor_ms
            .max(max.saturating_sub(st.out_of_orderness_ms + st.allowed_lateness_ms));
        Ok(())
    }

    /// Marks an offset as seen without folding anything (a dead-lettered message).
    pub fn skip(&mut self, stream: Stream, offset: i64) {
        let c = &mut self.clocks[stream as usize];
        c.next_offset = c.next_offset.max(offset + 1);
    }

    pub fn on_survey(
        &mut self,
        s: Survey,
        offset: i64,
        st: &Settings,
        out: &mut Outputs,
    ) -> Result<(), TooLate> {
        self.accept(Stream::Survey, offset, s.submitted_at_ms, st)?;
        if let Some(forced) = self.join.add_survey(s, &st.join) {
            fold_survey(&mut self.windows, self.partition, forced, st, out);
        }
        Ok(())
    }

    pub fn on_interaction(
        &mut self,
        i: Interaction,
        offset: i64,
        st: &Settings,
        out: &mut Outputs,
    ) -> Result<(), TooLate> {
        self.accept(Stream::Interaction, offset, i.ended_at_ms, st)?;
        out.join_evicted += self.join.add_contact(&i, &st.join) as u64;
        let (talk, hold, wrap) = (i.talk_ms as u64, i.hold_ms as u64, i.wrap_ms as u64);
        self.windows
            .add(i.ended_at_ms, &dims::contact(&i), &st.window, |p| {
                p.add_contact(talk, hold, wrap)
            });
        out.contacts.push(ContactFact {
            partition: self.partition,
            offset,
            interaction: i,
        });
        Ok(())
    }

    /// Settles surveys, closes windows and evicts contacts as far as the clocks allow.
    pub fn advance(&mut self, st: &Settings, out: &mut Outputs) {
        for s in Stream::ALL {
            if self.idle[s as usize] {
                let other = self.clocks[s.other() as usize].floor_ms;
                let c = &mut self.clocks[s as usize];
                c.floor_ms = c.floor_ms.max(other);
            }
        }
        let contact_floor = self.clocks[Stream::Interaction as usize].floor_ms;
        let survey_floor = self.clocks[Stream::Survey as usize].floor_ms;
        self.settle(contact_floor, st, out);
        let pending = self.join.earliest_pending_ms(&st.join).unwrap_or(i64::MAX);
        let p = self.partition;
        self.windows.close_until(
            survey_floor.min(contact_floor).min(pending),
            &st.window,
            |u| out.windows.push((p, u)),
        );
        self.join.evict_before(
            survey_floor
                .min(pending)
                .saturating_sub(st.join.lookback_ms),
        );
    }

    /// End of a bounded input: nothing more can arrive, so settle and close everything.
    pub fn finish(&mut self, st: &Settings, out: &mut Outputs) {
        self.settle(i64::MAX, st, out);
        let p = self.partition;
        self.windows
            .close_until(i64::MAX, &st.window, |u| out.windows.push((p, u)));
    }

    fn settle(&mut self, contact_floor: i64, st: &Settings, out: &mut Outputs) {
        let (windows, p) = (&mut self.windows, self.partition);
        self.join.resolve_until(contact_floor, &st.join, |r| {
            fold_survey(windows, p, r, st, out)
        });
    }

    /// Emits open windows changed since the last flush.
    pub fn drain(&mut self, st: &Settings, out: &mut Outputs) {
        let p = self.partition;
        self.windows
            .drain_dirty(&st.window, |u| out.windows.push((p, u)));
    }

    /// Checkpoint encoding. Includes offsets, so state and position restore together.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(b)
    }
}

/// Folds a settled survey into the windows and queues its fact row.
fn fold_survey(
    windows: &mut WindowState,
    partition: i32,
    r: Resolved,
    st: &Settings,
    out: &mut Outputs,
) {
    let dims = dims::survey(&r.survey, r.attribution.as_ref());
    let (nps, csat, attributed) = (
        r.survey.nps_score,
        r.survey.csat_score,
        r.attribution.is_some(),
    );
    windows.add(r.survey.submitted_at_ms, &dims, &st.window, |p| {
        p.add_survey(nps, csat, attributed)
    });
    out.surveys.push(SurveyFact {
        partition,
        resolved: r,
    });
}
