//! The processing core: per-partition state plus the settings they share. The Kafka source
//! and the embedded demo both drive this same core; it does no I/O.

pub mod dedup;
pub mod dims;
pub mod limits;
pub mod partition;

use crate::join::JoinConfig;
use crate::model::{Event, Stream};
use crate::window::WindowConfig;
use limits::Limits;
use partition::{Accepted, Outputs, PartitionState, Rejected};
use std::collections::BTreeMap;

/// Time and state settings, already validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub join: JoinConfig,
    pub window: WindowConfig,
    pub out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
    /// Events up to this far behind their stream's newest are still counted (correction
    /// rows); older ones are too late. At least out_of_orderness + allowed_lateness.
    pub late_horizon_ms: i64,
    pub limits: Limits,
}

pub struct Core {
    pub settings: Settings,
    parts: BTreeMap<i32, PartitionState>,
    out: Outputs,
}

impl Core {
    pub fn new(settings: Settings) -> Self {
        Core {
            settings,
            parts: BTreeMap::new(),
            out: Outputs::default(),
        }
    }

    /// State of a partition pair, created empty on first use.
    pub fn partition_mut(&mut self, p: i32) -> &mut PartitionState {
        self.parts
            .entry(p)
            .or_insert_with(|| PartitionState::new(p))
    }

    pub fn partition(&self, p: i32) -> Option<&PartitionState> {
        self.parts.get(&p)
    }

    pub fn partitions(&self) -> impl Iterator<Item = &PartitionState> {
        self.parts.values()
    }

    /// Installs a restored checkpoint, replacing what was there.
    pub fn restore(&mut self, state: PartitionState) {
        self.parts.insert(state.partition, state);
    }

    /// Forgets a partition this instance no longer owns.
    pub fn remove(&mut self, p: i32) -> Option<PartitionState> {
        self.parts.remove(&p)
    }

    /// Folds one validated event (see `crate::ingest` for the step that calls this).
    /// `content` is the message payload, compared when the event's id repeats.
    pub fn process(
        &mut self,
        partition: i32,
        offset: i64,
        event: Event,
        content: &[u8],
    ) -> Result<Accepted, Rejected> {
        let st = &self.settings;
        let ps = self
            .parts
            .entry(partition)
            .or_insert_with(|| PartitionState::new(partition));
        match event {
            Event::Survey(s) => ps.on_survey(s, offset, content, st, &mut self.out),
            Event::Interaction(i) => ps.on_interaction(i, offset, content, st, &mut self.out),
        }
    }

    /// Records a dead-lettered offset so the committed position moves past it.
    pub fn skip(&mut self, stream: Stream, partition: i32, offset: i64) {
        self.partition_mut(partition).skip(stream, offset);
    }

    pub fn advance(&mut self, partition: i32) {
        if let Some(ps) = self.parts.get_mut(&partition) {
            ps.advance(&self.settings, &mut self.out);
        }
    }

    pub fn advance_all(&mut self) {
        for ps in self.parts.values_mut() {
            ps.advance(&self.settings, &mut self.out);
        }
    }

    /// End of a bounded input for every partition: provisional facts, nothing closed.
    pub fn finish_all(&mut self) {
        for ps in self.parts.values_mut() {
            ps.finish(&self.settings, &mut self.out);
        }
    }

    /// End of a complete input (`run --until-end --final`) for every partition: everything
    /// settles and closes, and the states record that they are final.
    pub fn finish_all_final(&mut self) {
        for ps in self.parts.values_mut() {
            ps.finish_final(&self.settings, &mut self.out);
        }
    }

    /// Takes everything produced since the last call, including changed open windows.
    pub fn take_outputs(&mut self) -> Outputs {
        for ps in self.parts.values_mut() {
            ps.drain(&self.settings, &mut self.out);
        }
        let next = Outputs::sized_like(&self.out);
        std::mem::replace(&mut self.out, next)
    }

    /// Outputs waiting for the next flush (facts only; windows are drained at flush).
    pub fn pending_rows(&self) -> usize {
        self.out.surveys.len() + self.out.contacts.len() + self.out.windows.len()
    }
}
