//! Event-time alignment of a partition pair while catching up. Reading a backlog, the
//! consumer can run far ahead on one topic: surveys read days before the contacts that
//! settle them wait pending, and every window they touch stays open (docs/PERFORMANCE.md,
//! "Where a backlog's memory goes"). So a stream more than `kafka.max_stream_skew` of event
//! time ahead of its partner is paused while the partner still has records to read, and
//! resumed once the partner is within half the skew or read to its end. The partner is never
//! paused for it, so the pair always makes progress; and since results never depend on the
//! interleaving of the two topics, this changes when rows are written, not what they hold.

use super::{JobError, Run};
use crate::model::Stream;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

fn partner(s: Stream) -> Stream {
    match s {
        Stream::Survey => Stream::Interaction,
        Stream::Interaction => Stream::Survey,
    }
}

impl Run<'_> {
    /// Pauses streams too far ahead of their partner, resumes those that may go on.
    pub(super) fn align(&mut self) -> Result<(), JobError> {
        let skew = self.job.settings.kafka.max_stream_skew_ms();
        if skew <= 0 {
            return Ok(());
        }
        let maxes: Vec<(i32, [Option<i64>; 2])> = self
            .committer()
            .core()
            .partitions()
            .map(|ps| (ps.partition, [0, 1].map(|i| ps.clocks[i].max_event_ms)))
            .collect();
        for (p, max) in maxes {
            for ahead in Stream::ALL {
                let behind = partner(ahead);
                let gap = match (max[ahead as usize], max[behind as usize]) {
                    (Some(a), Some(b)) => a.saturating_sub(b),
                    (Some(_), None) => i64::MAX,
                    (None, _) => i64::MIN,
                };
                let paused = self.aligned.contains(&(ahead, p));
                let limit = if paused { skew / 2 } else { skew };
                let wait = gap > limit && !self.caught_up(behind, p);
                if wait && !paused {
                    self.consumer.pause(&self.one(ahead, p))?;
                    self.aligned.insert((ahead, p));
                    tracing::debug!(
                        topic = %self.topics[ahead as usize],
                        partition = p,
                        ahead_ms = gap,
                        "paused: ahead of its partner in event time"
                    );
                } else if !wait && paused {
                    self.aligned.remove(&(ahead, p));
                    if !self.held.contains_key(&(ahead, p)) {
                        self.resume_at_state(ahead, p)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn one(&self, s: Stream, p: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topics[s as usize], p);
        tpl
    }

    /// Resumes right after what the state holds, whatever was fetched and dropped while
    /// paused (the first message received still checks its offset: `on_message`).
    fn resume_at_state(&mut self, s: Stream, p: i32) -> Result<(), JobError> {
        self.consumer.resume(&self.one(s, p))?;
        let next = self.committer().next_offset(s, p);
        let topic = self.topics[s as usize].clone();
        if let Err(e) = self
            .consumer
            .seek(&topic, p, Offset::Offset(next), Duration::from_secs(10))
        {
            tracing::debug!(error = %e, partition = p, "seek after alignment refused");
        }
        self.expect.insert((s, p), (next, false));
        Ok(())
    }
}
