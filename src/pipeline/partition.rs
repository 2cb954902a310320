//! All state for one partition pair (partition p of both topics): stream clocks, repeated
//! ids, join and windows. Plain data with methods, no I/O, so it is unit-tested without a
//! runtime and checkpointed whole with its offsets.
//!
//! Every decision here is a function of each topic-partition's own order (docs/SEMANTICS.md), never of how the consumer interleaved the two topics or of the wall clock:
//! - lateness is judged against the event's own stream's clock;
//! - a survey is attributed among contacts that arrived before the contact floor passed its
//!   deadline, so a contact arriving later is excluded whenever it is processed;
//! - a window's own row holds only on-time events, and closes only once no on-time event or
//!   pending survey can still change it; late events go to correction rows of their own.
//!
//! So a stall, a restart or a different batch boundary can change *when* rows are written,
//! but not what they finally hold.

use super::Settings;
use crate::join::{JoinState, Pending, Resolved};
use crate::model::{Attribution, Interaction, Stream, Survey};
use crate::pipeline::dedup::{IdSet, Repeat};
use crate::window::aggregate::Partial;
use crate::window::{correction_id, WindowState, WindowUpdate};
use serde::{Deserialize, Serialize};

use super::dims;

/// What a checkpoint holds after the state and the early-close end (delivery::format):
/// added after format 4 was fixed, so older checkpoints, which end before it, still read.
#[derive(Serialize, Deserialize, Default)]
pub struct Trailer {
    revisable: Vec<crate::join::SavedRevisable>,
    final_run: bool,
}

/// Event-time progress of one stream of the pair.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct StreamClock {
    pub max_event_ms: Option<i64>,
    /// Events before this are late (corrections). Only grows.
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

impl StreamClock {
    /// Events before this are too late. Only grows.
    pub fn horizon_ms(&self, st: &Settings) -> i64 {
        self.max_event_ms
            .map_or(i64::MIN, |m| m.saturating_sub(st.late_horizon_ms))
    }
}

/// Why an event was not folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Behind its stream's late horizon.
    TooLate { event_ms: i64, horizon_ms: i64 },
    /// Its id was seen before in this partition.
    Duplicate(Repeat),
}

/// How an accepted event was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    OnTime,
    /// Behind its stream's floor, within the horizon: written as correction rows.
    Late,
}

/// A survey fact: settled (`is_final`), or provisional at the end of a bounded run.
#[derive(Debug)]
pub struct SurveyFact {
    pub partition: i32,
    pub resolved: Resolved,
    pub is_final: bool,
    /// How many times a late contact changed its answer (the fact's version grows with it).
    pub revision: u32,
    /// At the survey's settlement, its first answer: what the business counters count,
    /// once. None on a revision's fact and on a provisional one.
    pub first: Option<Option<Attribution>>,
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
    /// Revisable surveys made final early by a cap.
    pub join_final_early: u64,
    /// Settled surveys a late contact re-credited.
    pub join_revisions: u64,
    /// Surveys settled unattributed whose ticket had other customers' contacts only.
    pub join_other_customer: u64,
    /// Window rows closed early at the open-row cap.
    pub windows_closed_early: u64,
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
            join_final_early: 0,
            join_revisions: 0,
            join_other_customer: 0,
            windows_closed_early: 0,
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
    seen: [IdSet; 2],
    join: JoinState,
    windows: WindowState,
    /// Windows ending at or before this were closed early at the open-row cap; events
    /// before it go to correction rows as late ones do. Only grows. Saved as a trailer
    /// after the state (delivery::format), so checkpoints from before it still read.
    #[serde(skip, default = "no_early_close")]
    early_closed_ms: i64,
    /// Closed by `run --until-end --final`: the input was declared complete. Saved in the
    /// trailer (delivery::format).
    #[serde(skip)]
    final_run: bool,
}

fn no_early_close() -> i64 {
    i64::MIN
}

fn survey_partial(s: &Survey, attributed: bool) -> Partial {
    Partial::survey(s.nps_score, s.csat_score, attributed)
}

fn contact_partial(i: &Interaction) -> Partial {
    let ms = |x: i64| u64::try_from(x).unwrap_or(0);
    let mut p = Partial::default();
    p.add_contact(ms(i.talk_ms), ms(i.hold_ms), ms(i.wrap_ms));
    p
}

impl PartitionState {
    pub fn new(partition: i32) -> Self {
        PartitionState {
            partition,
            clocks: [StreamClock::default(); 2],
            seen: [IdSet::default(), IdSet::default()],
            join: JoinState::default(),
            windows: WindowState::default(),
            early_closed_ms: i64::MIN,
            final_run: false,
        }
    }

    /// End of the windows closed early at the open-row cap (i64::MIN: none).
    pub fn early_closed_ms(&self) -> i64 {
        self.early_closed_ms
    }

    /// Restores [`Self::early_closed_ms`] from a checkpoint.
    pub fn restore_early_closed_ms(&mut self, ms: i64) {
        self.early_closed_ms = self.early_closed_ms.max(ms);
    }

    pub fn join(&self) -> &JoinState {
        &self.join
    }

    /// Whether a `--final` run closed this state.
    pub fn is_final_run(&self) -> bool {
        self.final_run
    }

    /// What the trailer of a checkpoint holds beyond the early-close end.
    pub fn trailer(&self) -> Trailer {
        Trailer {
            revisable: self.join.save_revisable(),
            final_run: self.final_run,
        }
    }

    /// Restores [`Self::trailer`] (after the rest of the state).
    pub fn restore_trailer(&mut self, t: Trailer) {
        self.join.restore_revisable(t.revisable);
        self.final_run = t.final_run;
    }

    pub fn windows(&self) -> &WindowState {
        &self.windows
    }

    /// Ids remembered for duplicate detection, both streams.
    pub fn ids_len(&self) -> usize {
        self.seen[0].len() + self.seen[1].len()
    }

    /// Bytes the remembered ids take, both streams.
    pub fn ids_bytes(&self) -> usize {
        self.seen[0].bytes().saturating_add(self.seen[1].bytes())
    }

    /// Every open window row, for summaries.
    pub fn window_snapshot(
        &mut self,
        st: &Settings,
    ) -> Vec<(crate::window::WindowKey, crate::window::aggregate::Partial)> {
        self.windows.snapshot(&st.window)
    }

    /// Lateness, then repeats, then the clock. Rejected events never move a clock.
    fn accept(
        &mut self,
        stream: Stream,
        offset: i64,
        t: i64,
        id: &str,
        content: &[u8],
        st: &Settings,
    ) -> Result<Accepted, Rejected> {
        let c = &mut self.clocks[stream as usize];
        c.next_offset = c.next_offset.max(offset.saturating_add(1));
        let horizon_ms = c.horizon_ms(st);
        if t < horizon_ms {
            return Err(Rejected::TooLate {
                event_ms: t,
                horizon_ms,
            });
        }
        self.seen[stream as usize]
            .check(id, content, t, horizon_ms, st.limits.max_ids)
            .map_err(Rejected::Duplicate)?;
        if t < c.floor_ms || t < self.early_closed_ms {
            return Ok(Accepted::Late);
        }
        let max = c.max_event_ms.map_or(t, |m| m.max(t));
        c.max_event_ms = Some(max);
        c.floor_ms = c.floor_ms.max(
            max.saturating_sub(st.out_of_orderness_ms)
                .saturating_sub(st.allowed_lateness_ms),
        );
        Ok(Accepted::OnTime)
    }

    /// Marks an offset as seen without folding anything (a dead-lettered message).
    pub fn skip(&mut self, stream: Stream, offset: i64) {
        let c = &mut self.clocks[stream as usize];
        c.next_offset = c.next_offset.max(offset.saturating_add(1));
    }

    /// `content` is the event's canonical encoding, compared when its id repeats.
    pub fn on_survey(
        &mut self,
        s: Survey,
        offset: i64,
        content: &[u8],
        st: &Settings,
        out: &mut Outputs,
    ) -> Result<Accepted, Rejected> {
        let t = s.submitted_at_ms;
        let how = self.accept(Stream::Survey, offset, t, &s.response_id, content, st)?;
        let floor = self.clocks[Stream::Survey as usize].floor_ms;
        let pending = Pending {
            lo_ms: t.max(floor).saturating_sub(st.join.lookback_ms),
            late: how == Accepted::Late,
            survey: s,
            offset,
        };
        // On time: counted at once as unattributed, moved to its segment when it settles.
        // Not under the answer the contacts read so far give: that depends on how the
        // consumer interleaved the topics, and a row only such an answer created would
        // outlive a crash with nothing left to replace it. Late: counted once settled, in
        // correction rows.
        if how == Accepted::OnTime {
            let p = survey_partial(&pending.survey, false);
            self.windows
                .add(t, &dims::survey(&pending.survey, None), &st.window, |x| {
                    x.merge(&p)
                });
        }
        if let Some(forced) = self.join.park(pending, &st.join) {
            self.settled(forced, st, out);
        }
        Ok(how)
    }

    pub fn on_interaction(
        &mut self,
        i: Interaction,
        offset: i64,
        content: &[u8],
        st: &Settings,
        out: &mut Outputs,
    ) -> Result<Accepted, Rejected> {
        let floor_before = self.clocks[Stream::Interaction as usize].floor_ms;
        let how = self.accept(
            Stream::Interaction,
            offset,
            i.ended_at_ms,
            &i.interaction_id,
            content,
            st,
        )?;
        let mut revised = Vec::new();
        out.join_evicted +=
            self.join
                .add_contact(&i, floor_before, &st.join, &mut revised) as u64;
        for r in revised {
            self.settled(r, st, out);
        }
        let p = contact_partial(&i);
        let d = dims::contact(&i);
        match how {
            Accepted::OnTime => self
                .windows
                .add(i.ended_at_ms, &d, &st.window, |x| x.merge(&p)),
            Accepted::Late => {
                let (part, rev) = (self.partition, correction_id(Stream::Interaction, offset));
                self.windows
                    .corrections(i.ended_at_ms, &d, &st.window, rev, &p, |u| {
                        out.windows.push((part, u))
                    });
            }
        }
        out.contacts.push(ContactFact {
            partition: self.partition,
            offset,
            interaction: i,
        });
        Ok(how)
    }

    /// Settles surveys, closes windows and evicts contacts as far as the clocks allow.
    pub fn advance(&mut self, st: &Settings, out: &mut Outputs) {
        let contact_floor = self.clocks[Stream::Interaction as usize].floor_ms;
        let survey_floor = self.clocks[Stream::Survey as usize].floor_ms;
        for s in self.join.resolve_until(contact_floor, &st.join) {
            self.settled(s, st, out);
        }
        self.close_early(st, out);
        let pending = self.join.earliest_pending_ms().unwrap_or(i64::MAX);
        let p = self.partition;
        self.windows.close_until(
            survey_floor.min(contact_floor).min(pending),
            &st.window,
            |u| out.windows.push((p, u)),
        );
        // Contacts stay while a pending, revisable or future survey can reach them.
        let revisable = self
            .join
            .earliest_revisable_deadline()
            .map_or(i64::MAX, |d| d.saturating_sub(st.join.max_wait_ms));
        self.join.evict_before(
            survey_floor
                .min(pending)
                .min(revisable)
                .saturating_sub(st.join.lookback_ms),
        );
        out.join_final_early += self.join.take_final_early();
    }

    /// At the open-row cap, the oldest windows close before the clocks allow: surveys still
    /// pending in them settle now (forced, with the contacts held), the windows are emitted
    /// final, and later events in them become correction rows. Totals stay exact; which row
    /// an event lands in and a forced survey's attribution then depend on load.
    fn close_early(&mut self, st: &Settings, out: &mut Outputs) {
        let Some(end) = self
            .windows
            .early_close_end(st.limits.max_open_rows, &st.window)
        else {
            return;
        };
        for s in self.join.force_before(end, &st.join) {
            self.settled(s, st, out);
        }
        self.early_closed_ms = self.early_closed_ms.max(end);
        let p = self.partition;
        let before = out.windows.len();
        self.windows
            .close_until(end, &st.window, |u| out.windows.push((p, u)));
        out.windows_closed_early += (out.windows.len() - before) as u64;
    }

    /// Emits open windows changed since the last flush.
    pub fn drain(&mut self, st: &Settings, out: &mut Outputs) {
        let p = self.partition;
        self.windows
            .drain_dirty(&st.window, |u| out.windows.push((p, u)));
    }
}

#[cfg(test)]
mod bounded_tests;
mod settle;

#[cfg(test)]
mod revision_tests;
#[cfg(test)]
pub(crate) mod tests;
