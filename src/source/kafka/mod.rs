//! The Kafka job: consumes both topics in one consumer group (range assignment keeps
//! partition p of both topics together), decodes, processes through the core, and every
//! flush period writes rows -> confirms dead letters -> checkpoints state -> commits offsets,
//! in that order (at-least-once with idempotent rows = exact results).
//!
//! The consumer runs on a plain thread with `BaseConsumer::poll` in a batch loop: no await
//! or channel hop per message. Async I/O (ClickHouse, registry) runs via the runtime handle.

mod flush;
mod setup;

use super::dlq::{DeadLetter, DeadLetterProducer};
use super::Flusher;
use crate::codec::Decoder;
use crate::config::{Config, Validated};
use crate::ingest::{Ingest, Message};
use crate::metrics::{Business, Metrics};
use crate::model::Stream;
use crate::pipeline::checkpoint;
use crate::pipeline::partition::PartitionState;
use crate::pipeline::Core;
use crate::sink::rows::CheckpointRow;
use crate::sink::ClickHouseSink;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::Offset;
pub use setup::consumer_config;
use setup::{cached_high_watermark, check_topics, client_config, Change, Ctx};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Topics(String),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error("checkpoint of {state_id:?} for partition {partition} cannot be restored: {detail}")]
    Checkpoint {
        state_id: String,
        partition: i32,
        detail: String,
    },
    #[error("dead-letter topic: {0}")]
    DeadLetter(String),
    #[error("schema registry: {0}")]
    Registry(String),
}

pub struct KafkaJob {
    pub config: Config,
    pub validated: Validated,
    pub metrics: Arc<Metrics>,
    pub sink: Arc<ClickHouseSink>,
    pub decoder: Decoder,
    pub runtime: tokio::runtime::Handle,
    /// Stop at the end of the input (every assigned partition at EOF) instead of waiting.
    pub bounded: bool,
}

/// How a run ended, for the caller's log line.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub consumed: u64,
    pub dead_lettered: u64,
    pub late: u64,
    pub revised: u64,
    pub duplicates: u64,
}

struct Run<'a> {
    job: &'a mut KafkaJob,
    consumer: Arc<BaseConsumer<Ctx>>,
    dlq: DeadLetterProducer,
    core: Core,
    ingest: Ingest,
    flusher: Arc<Flusher>,
    /// The previous batch's insert, still running while the next batch is consumed.
    inflight: Option<tokio::task::JoinHandle<Result<(), crate::sink::SinkError>>>,
    topics: [String; 2],
    /// First offset expected per (stream, partition) right after a restore.
    expect: HashMap<(Stream, i32), (i64, bool)>,
    at_eof: HashMap<(Stream, i32), Instant>,
    assigned: BTreeSet<i32>,
    touched: BTreeSet<i32>,
    consumed: HashMap<(Stream, i32), u64>,
    checkpoint_seq: u64,
    last_checkpoint: Instant,
    checkpoint_due: BTreeSet<i32>,
    /// Payload bytes consumed since the last flush.
    batch_bytes: usize,
    /// Business counts of facts written but not yet covered by a checkpoint, per partition.
    business: BTreeMap<i32, Business>,
}

impl KafkaJob {
    /// Runs until `stop` is set (or the input ends, when bounded); flushes and commits first.
    pub fn run(&mut self, stop: Arc<AtomicBool>) -> Result<RunSummary, JobError> {
        let client = client_config(&self.config);
        let cc = consumer_config(&self.config);
        let consumer: BaseConsumer<Ctx> = cc.create_with_context(Ctx {
            changes: Mutex::new(Vec::new()),
            commit_errors: self.metrics.commit_errors.clone(),
        })?;
        let topics = [
            self.config.kafka.survey_topic.clone(),
            self.config.kafka.interaction_topic.clone(),
        ];
        let partitions = check_topics(&consumer, &topics, &self.config.kafka.dead_letter_topic)?;
        self.check_checkpoints(partitions)?;
        consumer.subscribe(&[&topics[0], &topics[1]])?;
        let dlq = DeadLetterProducer::new(
            &client,
            &self.config.kafka.dead_letter_topic,
            self.config.kafka.dead_letter_max_bytes,
        )?;
        let flusher = Flusher {
            sink: Some(self.sink.clone()),
            metrics: self.metrics.clone(),
            groupings: self.validated.settings.window.groupings.clone(),
        };
        let core = Core::new(self.validated.settings.clone());
        let ingest = Ingest::new(self.metrics.clone(), topics.clone());
        let mut run = Run {
            job: self,
            consumer: Arc::new(consumer),
            dlq,
            core,
            ingest,
            flusher: Arc::new(flusher),
            inflight: None,
            topics,
            expect: HashMap::new(),
            at_eof: HashMap::new(),
            assigned: BTreeSet::new(),
            touched: BTreeSet::new(),
            consumed: HashMap::new(),
            checkpoint_seq: 0,
            last_checkpoint: Instant::now(),
            checkpoint_due: BTreeSet::new(),
            batch_bytes: 0,
            business: BTreeMap::new(),
        };
        run.main_loop(&stop)?;
        let t = run.ingest.tally;
        Ok(RunSummary {
            consumed: t.consumed,
            dead_lettered: t.dead_lettered,
            late: t.late,
            revised: t.revised,
            duplicates: t.duplicates,
        })
    }
}

impl KafkaJob {
    /// Refuses to start when a saved state was built under other window or join settings
    /// (or by another format), before joining the group: no row may land under the wrong
    /// grouping, and the message names what changed.
    fn check_checkpoints(&self, partitions: i32) -> Result<(), JobError> {
        let group = self.config.state_id().to_string();
        let all: Vec<i32> = (0..partitions).collect();
        let rows = self
            .runtime
            .block_on(self.sink.load_checkpoints(&group, &all))?;
        for row in rows {
            checkpoint::check(&row.state, &self.validated.settings).map_err(|e| {
                JobError::Checkpoint {
                    state_id: group.clone(),
                    partition: row.source_partition,
                    detail: e.to_string(),
                }
            })?;
        }
        Ok(())
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

    fn main_loop(&mut self, stop: &AtomicBool) -> Result<(), JobError> {
        let period = self.job.validated.flush_period;
        let max_rows = self.job.config.sink.max_rows;
        let max_bytes = self.job.config.sink.max_bytes;
        let mut last_flush = Instant::now();
        self.job.metrics.up.set(1);
        loop {
            if stop.load(Ordering::Relaxed) {
                tracing::info!("shutdown requested: flushing and committing");
                self.flush(CommitMode::Sync)?;
                break;
            }
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
                    Err(e) => tracing::warn!(error = %e, "consumer error"),
                }
            }
            self.apply_changes()?;
            for p in std::mem::take(&mut self.touched) {
                self.core.advance(p);
                self.dirty_checkpoint(p);
            }
            if self.job.bounded && self.input_done() {
                tracing::info!(
                    "end of input: writing open windows and pending surveys as provisional"
                );
                self.core.finish_all();
                self.checkpoint_all();
                self.flush(CommitMode::Sync)?;
                break;
            }
            if self.core.pending_rows() >= max_rows
                || self.batch_bytes >= max_bytes
                || last_flush.elapsed() >= period
            {
                self.flush(CommitMode::Async)?;
                last_flush = Instant::now();
            }
        }
        self.job.metrics.up.set(0);
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
        let next = self
            .core
            .partition(p)
            .map_or(0, |ps| ps.clocks[s as usize].next_offset);
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
        let all_eof = |p: &i32| {
            Stream::ALL
                .iter()
                .all(|&s| self.at_eof.contains_key(&(s, *p)))
        };
        !self.assigned.is_empty()
            && self.assigned.iter().all(all_eof)
            && self
                .assigned
                .iter()
                .all(|&p| Stream::ALL.iter().all(|&s| self.caught_up(s, p)))
    }

    fn on_message(&mut self, m: &Message<'_>, key: Option<&[u8]>) -> Result<(), JobError> {
        let (stream, p, offset) = (m.stream, m.partition, m.offset);
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
        *self.consumed.entry((stream, p)).or_default() += 1;
        self.batch_bytes += m.payload.len();
        self.touched.insert(p);
        let reject = loop {
            match self.ingest.ingest(&mut self.job.decoder, &mut self.core, m) {
                Ok(r) => break r,
                Err(e) if e.is_fatal() => return Err(JobError::Registry(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "schema registry unavailable; retrying");
                    if STOP_RETRY.load(Ordering::Relaxed) {
                        return Err(JobError::Registry(format!(
                            "unavailable and shutdown requested: {e}"
                        )));
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        let Some(reject) = reject else {
            return Ok(());
        };
        let topic = self.topics[stream as usize].clone();
        tracing::debug!(
            topic,
            partition = p,
            offset,
            reason = reject.reason,
            "dead-lettered"
        );
        self.dlq
            .send(&DeadLetter {
                reason: reject.reason,
                detail: reject.detail,
                topic: &topic,
                partition: p,
                offset,
                key,
                payload: m.payload,
            })
            .map_err(|e| JobError::DeadLetter(e.to_string()))
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
                Change::Revoke(parts) => {
                    // Save what we have; the next owner resumes from it (commit may fail now).
                    for &p in &parts {
                        self.dirty_checkpoint(p);
                    }
                    if let Err(e) = self.flush(CommitMode::Sync) {
                        tracing::warn!(error = %e, "flush on revoke failed; the next owner replays from the last checkpoint");
                    }
                    for p in parts {
                        // Counted already if that flush checkpointed; the next owner's
                        // replay counts them otherwise.
                        self.business.remove(&p);
                        self.core.remove(p);
                        self.assigned.remove(&p);
                        for s in Stream::ALL {
                            self.expect.remove(&(s, p));
                            self.at_eof.remove(&(s, p));
                        }
                    }
                }
                Change::Assign(parts) => self.restore(&parts)?,
                Change::Unpaired(which) => {
                    return Err(JobError::Topics(format!(
                        "assigned {which} without the same partition of the other topic: \
                         the join needs partition p of both topics on one instance. Another \
                         member of group {:?} subscribes differently or uses another \
                         assignment strategy; every member must be cx-pipeline with the same \
                         topics",
                        self.job.config.kafka.group_id
                    )))
                }
            }
        }
        Ok(())
    }

    fn restore(&mut self, parts: &[i32]) -> Result<(), JobError> {
        let group = self.job.config.state_id().to_string();
        let rows = self
            .job
            .runtime
            .block_on(self.job.sink.load_checkpoints(&group, parts))?;
        let mut by_p: HashMap<i32, CheckpointRow> =
            rows.into_iter().map(|r| (r.source_partition, r)).collect();
        for &p in parts {
            let state = match by_p.remove(&p) {
                Some(row) => checkpoint::decode(&row.state, &self.core.settings).map_err(|e| {
                    JobError::Checkpoint {
                        state_id: group.clone(),
                        partition: p,
                        detail: e.to_string(),
                    }
                })?,
                None => PartitionState::new(p),
            };
            tracing::info!(
                partition = p,
                survey_offset = state.clocks[0].next_offset,
                interaction_offset = state.clocks[1].next_offset,
                "partition assigned"
            );
            for s in Stream::ALL {
                // Resume exactly after the checkpoint, wherever the committed offsets point:
                // behind it after a lost asynchronous commit, ahead of it after an offset
                // reset. Seeking now matters when they are ahead and no newer message will
                // come to reveal it. The seek can be refused this early, or overtaken by
                // librdkafka starting from the committed offset, so the first message
                // received still checks its offset and seeks back once if needed
                // (`on_message`): the early seek does not count as that one.
                let want = state.clocks[s as usize].next_offset;
                let topic = &self.topics[s as usize];
                if let Err(e) =
                    self.consumer
                        .seek(topic, p, Offset::Offset(want), Duration::from_secs(10))
                {
                    tracing::debug!(error = %e, partition = p, "early seek refused");
                }
                self.expect.insert((s, p), (want, false));
            }
            self.core.restore(state);
            self.assigned.insert(p);
        }
        Ok(())
    }

    fn dirty_checkpoint(&mut self, p: i32) {
        self.checkpoint_due.insert(p);
    }

    fn checkpoint_all(&mut self) {
        let all: Vec<i32> = self.assigned.iter().copied().collect();
        self.checkpoint_due.extend(all);
    }
}

/// Set at shutdown so a registry outage cannot hold the process forever.
pub static STOP_RETRY: AtomicBool = AtomicBool::new(false);
