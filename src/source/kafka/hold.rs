//! Waiting for the schema registry without starving the consumer. A message whose writer
//! schema cannot be fetched (5xx, timeout, connection refused) is kept aside and its
//! topic-partition paused; the loop goes on polling (so the group keeps this member) and
//! consuming every other partition, and tries the message again with backoff (1 s doubling
//! to 30 s). When it decodes, the partition resumes exactly after it: anything fetched past
//! it meanwhile was dropped and is read again. A stop while waiting checkpoints the
//! partition before the held message, so it is consumed again on restart.

use super::{JobError, Run};
use crate::codec::DecodeError;
use crate::ingest::Message;
use crate::internal_events::{InternalEvent, RegistryUnavailable};
use crate::model::Stream;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub(super) struct Held {
    offset: i64,
    timestamp_ms: Option<i64>,
    payload: Vec<u8>,
    key: Option<Vec<u8>>,
    next_try: Instant,
    backoff: Duration,
}

pub(super) const FIRST: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(30);

impl Run<'_> {
    fn pause_tpl(&self, s: Stream, p: i32) -> Result<TopicPartitionList, JobError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topics[s as usize], p);
        Ok(tpl)
    }

    /// Keeps the message aside and pauses its topic-partition.
    pub(super) fn hold(
        &mut self,
        m: &Message<'_>,
        key: Option<&[u8]>,
        e: &DecodeError,
    ) -> Result<(), JobError> {
        // A throttled lookup says when its turn comes, and is counted by the decoder's
        // lookup metrics; anything else is the registry failing.
        let backoff = match e.retry_in() {
            Some(turn) => turn,
            None => {
                RegistryUnavailable {
                    topic: &self.topics[m.stream as usize],
                    partition: m.partition,
                    offset: m.offset,
                    error: e,
                    retry_in: self.hold_backoff,
                }
                .emit(&self.job.metrics);
                self.hold_backoff
            }
        };
        let tpl = self.pause_tpl(m.stream, m.partition)?;
        self.consumer.pause(&tpl)?;
        self.held.insert(
            (m.stream, m.partition),
            Held {
                offset: m.offset,
                timestamp_ms: m.timestamp_ms,
                payload: m.payload.to_vec(),
                key: key.map(<[u8]>::to_vec),
                next_try: Instant::now() + backoff,
                backoff,
            },
        );
        Ok(())
    }

    /// Tries one held message whose backoff has passed (each attempt may take the registry
    /// client's whole timeout, and the loop must get back to `poll` in between); resumes
    /// its partition when it goes through. Once one schema arrives the others usually
    /// follow from the cache, one loop turn each.
    pub(super) fn retry_held(&mut self) -> Result<(), JobError> {
        let now = Instant::now();
        let ready: Vec<(Stream, i32)> = self
            .held
            .iter()
            .filter(|(_, h)| h.next_try <= now)
            .map(|(k, _)| *k)
            .take(1)
            .collect();
        for (s, p) in ready {
            let Some(h) = self.held.remove(&(s, p)) else {
                continue;
            };
            let msg = Message {
                stream: s,
                partition: p,
                offset: h.offset,
                timestamp_ms: h.timestamp_ms,
                payload: &h.payload,
            };
            // Still unavailable: `on_message` holds it anew, backing off further.
            self.hold_backoff = (h.backoff * 2).min(MAX);
            let r = self.on_message(&msg, h.key.as_deref());
            self.hold_backoff = FIRST;
            r?;
            if self.held.contains_key(&(s, p)) {
                continue;
            }
            // Through: resume right after it, whatever was fetched and dropped meanwhile
            // (unless it is also waiting for its partner: `align` resumes it then).
            let next = h.offset.saturating_add(1);
            if self.aligned.contains(&(s, p)) {
                self.expect.insert((s, p), (next, false));
                continue;
            }
            let tpl = self.pause_tpl(s, p)?;
            self.consumer.resume(&tpl)?;
            let topic = self.topics[s as usize].clone();
            if let Err(e) =
                self.consumer
                    .seek(&topic, p, Offset::Offset(next), Duration::from_secs(10))
            {
                tracing::debug!(error = %e, partition = p, "seek after the wait refused");
            }
            self.expect.insert((s, p), (next, false));
        }
        Ok(())
    }
}
