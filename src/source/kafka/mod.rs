//! The Kafka job's poll loop: consumes both topics in one consumer group (range assignment
//! keeps partition p of both topics together), runs each message through the ingest step,
//! and hands delivery to the [`Committer`] (rows -> dead letters -> checkpoint -> commit).
//!
//! The consumer runs on a plain thread with `BaseConsumer::poll` in a batch loop: no await
//! or channel hop per message. Async I/O (ClickHouse, registry) runs via the runtime handle.
//! The committer is shared with the consumer context behind a mutex because librdkafka calls
//! the revoke inside `poll`, and the state must be written before the partitions go; the
//! loop never holds the lock across `poll`.

mod align;
mod describe;
mod diagnose;
mod gauges;
mod hold;
mod setup;

use crate::codec::{DecodeError, Decoder, Disposition};
use crate::config::Validated;
use crate::delivery::bases::Policy;
use crate::delivery::dead_letter::{DeadLetter, DeadLetterProducer};
use crate::delivery::store::CheckpointStore;
use crate::delivery::{Close, Committer, CommitterParts, DeliveryError};
use crate::ingest::{Ingest, Message, Tally};
use crate::internal_events::{ConsumerError, InternalEvent};
use crate::metrics::Metrics;
use crate::model::Stream;
use crate::pipeline::Core;
use crate::shutdown::Shutdown;
use crate::sink::{ClickHouseSink, RowWriter};
use hold::Held;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
pub use setup::consumer_config;
use setup::{cached_high_watermark, check_topics, client_config, Change, Ctx};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Topics(String),
    #[error("cannot connect to Kafka: {0}")]
    Connect(String),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Registry(DecodeError),
}

pub struct KafkaJob {
    pub settings: Validated,
    pub metrics: Arc<Metrics>,
    pub sink: Arc<ClickHouseSink>,
    pub decoder: Decoder,
    pub runtime: tokio::runtime::Handle,
    /// Stop at the end of the input (every assigned partition at EOF) instead of waiting.
    pub bounded: bool,
    /// The input is complete (`--final`): at its end everything settles and closes.
    pub complete: bool,
}

struct Run<'a> {
    job: &'a mut KafkaJob,
    consumer: Arc<BaseConsumer<Ctx>>,
    committer: Arc<Mutex<Committer>>,
    ingest: Ingest,
    topics: [String; 2],
    /// First offset expected per (stream, partition) right after a restore or a wait.
    expect: HashMap<(Stream, i32), (i64, bool)>,
    at_eof: HashMap<(Stream, i32), Instant>,
    touched: BTreeSet<i32>,
    consumed: HashMap<(Stream, i32), u64>,
    /// Messages waiting for the schema registry, one per paused topic-partition.
    held: BTreeMap<(Stream, i32), Held>,
    /// The wait before the next registry attempt for a message held now.
    hold_backoff: Duration,
    /// Topic-partitions paused because they ran too far ahead of their partner (`align`).
    aligned: BTreeSet<(Stream, i32)>,
}

impl KafkaJob {
    /// Runs until `stop` is set (or the input ends, when bounded); flushes and commits first.
    /// Returns the run's counts, for the caller's log line.
    pub fn run(&mut self, stop: &Shutdown) -> Result<Tally, JobError> {
        let k = &self.settings.kafka;
        let client = client_config(k);
        let cc = consumer_config(k);
        let consumer: BaseConsumer<Ctx> = cc.create_with_context(Ctx {
            changes: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
            metrics: self.metrics.clone(),
            committer: OnceLock::new(),
        })?;
        let topics = [k.survey_topic.clone(), k.interaction_topic.clone()];
        let source = check_topics(&consumer, k)?;
        let partitions = source.topics[0].partitions;
        let v = &self.settings;
        let mut store = CheckpointStore::new(
            self.sink.clone(),
            k.state_id().to_string(),
            v.settings.clone(),
            source,
            Policy {
                max_age: v.snapshot_max_age,
                accept_final: self.complete,
            },
        );
        self.runtime
            .block_on(store.check_all(partitions))
            .map_err(DeliveryError::from)?;
        let dlq = DeadLetterProducer::new(&client, &k.dead_letter_topic, k.dead_letter_max_bytes)?;
        let committer = Arc::new(Mutex::new(Committer::new(CommitterParts {
            core: Core::new(v.settings.clone()),
            dlq,
            store,
            writer: Arc::new(RowWriter {
                sink: Some(self.sink.clone()),
                metrics: self.metrics.clone(),
                groupings: v.settings.window.groupings.clone(),
            }),
            runtime: self.runtime.clone(),
            metrics: self.metrics.clone(),
            topics: topics.clone(),
            checkpoint_interval: v.checkpoint_interval,
            batch: v.batch,
        })));
        let _ = consumer.context().committer.set(committer.clone());
        consumer.subscribe(&[&topics[0], &topics[1]])?;
        let ingest = Ingest::new(self.metrics.clone(), topics.clone());
        let mut run = Run {
            job: self,
            consumer: Arc::new(consumer),
            committer,
            ingest,
            topics,
            expect: HashMap::new(),
            at_eof: HashMap::new(),
            touched: BTreeSet::new(),
            consumed: HashMap::new(),
            held: BTreeMap::new(),
            aligned: BTreeSet::new(),
            hold_backoff: hold::FIRST,
        };
        let result = run.main_loop(stop);
        // Leave the group cleanly: the final revoke flush ran in the loop already.
        run.job.metrics.up.set(0);
        result?;
        Ok(run.ingest.tally)
    }
}

impl Run<'_> {
    fn stream_of(&self, topic: &str) -> Option<Stream> {
        if topic == self.topics[0] {
            Some(Stream::Survey)
        } else if topic == self.topics[1] {
            Some(Stream::Interaction)
        } else {
            None
        }
    }

    fn committer(&self) -> MutexGuard<'_, Committer> {
        self.committer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Partitions the committer found fenced while flushing are forgotten here too. One the
    /// group still assigns to this instance is claimed again: the group's assignment is the
    /// authority, and the newer epoch belongs to an instance that claimed late (stuck in a
    /// ClickHouse brownout past its own expulsion) and is about to learn it lost the
    /// partition. Dropping it would leave it unread until the next rebalance.
    fn after_flush(&mut self, fenced: Vec<i32>) -> Result<(), JobError> {
        for &p in &fenced {
            self.forget(p);
        }
        let assigned = self.consumer.assignment().unwrap_or_default();
        let mine: Vec<i32> = fenced
            .into_iter()
            .filter(|&p| {
                self.topics
                    .iter()
                    .all(|t| assigned.find_partition(t, p).is_some())
            })
            .collect();
        if !mine.is_empty() {
            tracing::warn!(partitions = ?mine, "fenced but still assigned here: claiming again");
            self.restore(&mine)?;
        }
        self.update_gauges();
        Ok(())
    }

    /// Closes through the committer: the one stop sequence for a shutdown and for the end
    /// of a bounded input.
    fn close(&mut self, why: Close) -> Result<(), JobError> {
        let consumer = self.consumer.clone();
        let fenced = self.committer().close(&consumer, why)?;
        for p in fenced {
            self.forget(p);
        }
        self.update_gauges();
        Ok(())
    }

    fn main_loop(&mut self, stop: &Shutdown) -> Result<(), JobError> {
        self.job.metrics.up.set(1);
        loop {
            if stop.is_set() {
                tracing::info!("shutdown requested: flushing and committing");
                return self.close(Close::Stop);
            }
            self.retry_held()?;
            self.poll_batch()?;
            self.apply_changes()?;
            self.align()?;
            let touched = std::mem::take(&mut self.touched);
            self.committer().advance(touched);
            if self.job.bounded && self.input_done() {
                tracing::info!(
                    "end of input: writing open windows and pending surveys as provisional"
                );
                return self.close(if self.job.complete {
                    Close::CompleteInput
                } else {
                    Close::EndOfInput
                });
            }
            let consumer = self.consumer.clone();
            let flushed = self.committer().flush_if_full(&consumer)?;
            if let Some(fenced) = flushed {
                self.after_flush(fenced)?;
            }
        }
    }

    /// Up to 5,000 messages, waiting at most 100 ms for the first.
    fn poll_batch(&mut self) -> Result<(), JobError> {
        let mut n = 0;
        let mut timeout = Duration::from_millis(100);
        let consumer = self.consumer.clone();
        while n < 5000 {
            let Some(res) = consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            self.apply_changes()?;
            match res {
                Ok(m) => {
                    n += 1;
                    let Some(stream) = self.stream_of(m.topic()) else {
                        continue;
                    };
                    let (p, offset) = (m.partition(), m.offset());
                    self.at_eof.remove(&(stream, p));
                    let msg = Message {
                        stream,
                        partition: p,
                        offset,
                        timestamp_ms: m.timestamp().to_millis(),
                        payload: m.payload().unwrap_or(&[]),
                    };
                    self.on_message(&msg, m.key())?;
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    // The EOF error does not name the topic; positions tell which side is done.
                    for s in Stream::ALL {
                        if self.caught_up(s, p) {
                            self.at_eof.entry((s, p)).or_insert_with(Instant::now);
                        }
                    }
                }
                Err(e) => ConsumerError { error: &e }.emit(&self.job.metrics),
            }
        }
        Ok(())
    }

    /// Whether the stream's partition is consumed up to the high watermark. The consumer's
    /// position counts too, not only the next offset the state expects: transaction markers
    /// (and aborted records, which a read_committed consumer never sees) occupy offsets, so
    /// a transactional topic ends on a marker that no message ever moves `next_offset` past.
    fn caught_up(&self, s: Stream, p: i32) -> bool {
        let topic = &self.topics[s as usize];
        let Some(high) = cached_high_watermark(&self.consumer, topic, p) else {
            return false;
        };
        let next = self.committer().next_offset(s, p);
        let position = self
            .consumer
            .position()
            .ok()
            .and_then(|tpl| tpl.find_partition(topic, p).map(|e| e.offset()))
            .and_then(|o| match o {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(0);
        next.max(position) >= high
    }

    fn input_done(&self) -> bool {
        let owned = self.committer().owned();
        let all_eof = |p: &i32| {
            Stream::ALL
                .iter()
                .all(|&s| self.at_eof.contains_key(&(s, *p)))
        };
        self.held.is_empty()
            && !owned.is_empty()
            && owned.iter().all(all_eof)
            && owned
                .iter()
                .all(|&p| Stream::ALL.iter().all(|&s| self.caught_up(s, p)))
    }

    fn on_message(&mut self, m: &Message<'_>, key: Option<&[u8]>) -> Result<(), JobError> {
        let (stream, p, offset) = (m.stream, m.partition, m.offset);
        if self.held.contains_key(&(stream, p)) {
            return Ok(()); // fetched before the pause took hold; read again after the wait
        }
        if let Some(&(want, sought)) = self.expect.get(&(stream, p)) {
            if offset < want {
                return Ok(()); // already folded into the restored state
            }
            if offset > want && !sought {
                // Committed offsets ran ahead of the checkpoint: go back to it.
                let topic = self.topics[stream as usize].clone();
                self.consumer
                    .seek(&topic, p, Offset::Offset(want), Duration::from_secs(10))?;
                self.expect.insert((stream, p), (want, true));
                return Ok(());
            }
            if offset > want {
                // Normal on transactional topics (markers, aborted records); on others it
                // means retention deleted records the checkpoint had not reached.
                tracing::info!(
                    partition = p,
                    stream = stream.label(),
                    want,
                    got = offset,
                    "offsets skipped after the checkpoint (transaction markers, aborted records or retention)"
                );
            }
            self.expect.remove(&(stream, p));
        }
        // Locks the field, not `self`: the loop's own fields stay usable beside the guard.
        let mut c = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        let (ingest, decoder) = (&mut self.ingest, &mut self.job.decoder);
        let Some(verdict) = c.ingest(p, m.payload.len(), |core| ingest.ingest(decoder, core, m))
        else {
            return Ok(()); // fenced or lost; the rebalance that follows takes it away
        };
        *self.consumed.entry((stream, p)).or_default() += 1;
        self.touched.insert(p);
        let reject = match verdict {
            Ok(r) => r,
            Err(e) if e.disposition() == Disposition::Stop => return Err(JobError::Registry(e)),
            Err(e) => {
                drop(c);
                return self.hold(m, key, &e);
            }
        };
        let Some(reject) = reject else {
            return Ok(());
        };
        c.dead_letter(&DeadLetter {
            reason: reject.reason,
            detail: reject.detail,
            topic: &self.topics[stream as usize],
            partition: p,
            offset,
            key,
            payload: m.payload,
        })?;
        Ok(())
    }

    fn apply_changes(&mut self) -> Result<(), JobError> {
        let changes = std::mem::take(
            &mut *self
                .consumer
                .context()
                .changes
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for change in changes {
            match change {
                // The committer flushed and released them inside the callback.
                Change::Revoke(parts) => parts.into_iter().for_each(|p| self.forget(p)),
                Change::Assign(parts) => self.restore(&parts)?,
                Change::Unpaired(which) => {
                    return Err(JobError::Topics(format!(
                        "assigned {which} without the same partition of the other topic: \
                         the join needs partition p of both topics on one instance. Another \
                         member of group {:?} subscribes differently or uses another \
                         assignment strategy; every member must be cx-pipeline with the same \
                         topics",
                        self.job.settings.kafka.group_id
                    )))
                }
            }
        }
        Ok(())
    }

    /// Drops the loop's bookkeeping for a partition this instance no longer owns.
    fn forget(&mut self, p: i32) {
        self.touched.remove(&p);
        for s in Stream::ALL {
            self.expect.remove(&(s, p));
            self.at_eof.remove(&(s, p));
            self.held.remove(&(s, p));
            self.aligned.remove(&(s, p));
        }
    }

    fn restore(&mut self, parts: &[i32]) -> Result<(), JobError> {
        let resumed = self.committer().assign(parts)?;
        // librdkafka keeps a partition paused across a revoke and a new assignment, but
        // `forget` dropped the reason it was paused (a held message, alignment): start every
        // assigned partition running, and let `align` and `hold` pause it again if need be.
        let mut tpl = TopicPartitionList::new();
        for &p in parts {
            for topic in &self.topics {
                tpl.add_partition(topic, p);
            }
        }
        self.consumer.resume(&tpl)?;
        for (p, offsets) in resumed {
            for s in Stream::ALL {
                // Resume exactly after the checkpoint, wherever the committed offsets point:
                // behind it after a lost asynchronous commit, ahead of it after an offset
                // reset. Seeking now matters when they are ahead and no newer message will
                // come to reveal it. The seek can be refused this early, or overtaken by
                // librdkafka starting from the committed offset, so the first message
                // received still checks its offset and seeks back once if needed
                // (`on_message`): the early seek does not count as that one.
                let want = offsets[s as usize];
                let topic = &self.topics[s as usize];
                if let Err(e) =
                    self.consumer
                        .seek(topic, p, Offset::Offset(want), Duration::from_secs(10))
                {
                    tracing::debug!(error = %e, partition = p, "early seek refused");
                }
                self.expect.insert((s, p), (want, false));
            }
        }
        Ok(())
    }
}
