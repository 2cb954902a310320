//! The Kafka job: consumes both topics in one consumer group (range assignment keeps
//! partition p of both topics together), decodes, processes through the core, and every
//! flush period writes rows -> confirms dead letters -> checkpoints state -> commits offsets,
//! in that order (at-least-once with idempotent rows = exact results).
//!
//! The consumer runs on a plain thread with `BaseConsumer::poll` in a batch loop: no await
//! or channel hop per message. Async I/O (ClickHouse, registry) runs via the runtime handle.

mod setup;

use super::dlq::{DeadLetter, DeadLetterProducer};
use super::Flusher;
use crate::codec::Decoder;
use crate::config::{Config, Validated};
use crate::metrics::Metrics;
use crate::model::Stream;
use crate::pipeline::partition::PartitionState;
use crate::pipeline::Core;
use crate::sink::clickhouse::now_s;
use crate::sink::rows::CheckpointRow;
use crate::sink::ClickHouseSink;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
pub use setup::consumer_config;
use setup::{cached_high_watermark, check_topics, client_config, Change, Ctx};
use std::collections::{BTreeSet, HashMap};
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
    #[error("checkpoint for partition {partition} is unreadable: {detail}")]
    Checkpoint { partition: i32, detail: String },
    #[error("dead-letter topic: {0}")]
    DeadLetter(String),
    #[error("schema registry unavailable and shutdown requested: {0}")]
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
}

struct Run<'a> {
    job: &'a mut KafkaJob,
    consumer: Arc<BaseConsumer<Ctx>>,
    dlq: DeadLetterProducer,
    core: Core,
    flusher: Arc<Flusher>,
    /// The previous batch's insert, still running while the next batch is consumed.
    inflight: Option<tokio::task::JoinHandle<Result<(), crate::sink::SinkError>>>,
    topics: [String; 2],
    /// First offset expected per (stream, partition) right after a restore.
    expect: HashMap<(Stream, i32), (i64, bool)>,
    at_eof: HashMap<(Stream, i32), Instant>,
    assigned: BTreeSet<i32>,
    touched: BTreeSet<i32>,
    summary: RunSummary,
    consumed: HashMap<(Stream, i32), u64>,
    checkpoint_seq: u64,
    last_checkpoint: Instant,
    checkpoint_due: BTreeSet<i32>,
    /// Payload bytes consumed since the last flush.
    batch_bytes: usize,
}

impl KafkaJob {
    /// Runs until `stop` is set (or the input ends, when bounded); flushes and commits first.
    pub fn run(&mut self, stop: Arc<AtomicBool>) -> Result<RunSummary, JobError> {
        let client = client_config(&self.config);
        let cc = consumer_config(&self.config);
        let consumer: BaseConsumer<Ctx> = cc.create_with_context(Ctx {
            changes: Mutex::new(Vec::new()),
        })?;
        let topics = [
            self.config.kafka.survey_topic.clone(),
            self.config.kafka.interaction_topic.clone(),
        ];
        check_topics(&consumer, &topics, &self.config.kafka.dead_letter_topic)?;
        consumer.subscribe(&[&topics[0], &topics[1]])?;
        let dlq = DeadLetterProducer::new(&client, &self.config.kafka.dead_letter_topic)?;
        let flusher = Flusher {
            sink: Some(self.sink.clone()),
            metrics: self.metrics.clone(),
            groupings: self.validated.settings.window.groupings.clone(),
        };
        let core = Core::new(self.validated.settings.clone());
        let mut run = Run {
            job: self,
            consumer: Arc::new(consumer),
            dlq,
            core,
            flusher: Arc::new(flusher),
            inflight: None,
            topics,
            expect: HashMap::new(),
            at_eof: HashMap::new(),
            assigned: BTreeSet::new(),
            touched: BTreeSet::new(),
            summary: RunSummary::default(),
            consumed: HashMap::new(),
            checkpoint_seq: 0,
            last_checkpoint: Instant::now(),
            checkpoint_due: BTreeSet::new(),
            batch_bytes: 0,
        };
        run.main_loop(&stop)?;
        Ok(run.summary)
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
        let idle_timeout = self.job.validated.idle_timeout;
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
                        self.on_message(stream, p, offset, m.key(), m.payload().unwrap_or(&[]))?;
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
            // Idle streams follow their pair's clock so windows can close.
            for &p in &self.assigned.clone() {
                let ps = self.core.partition_mut(p);
                for s in Stream::ALL {
                    let idle = self
                        .at_eof
                        .get(&(s, p))
                        .is_some_and(|t| t.elapsed() >= idle_timeout);
                    if ps.idle[s as usize] != idle {
                        ps.idle[s as usize] = idle;
                        self.touched.insert(p);
                    }
                }
            }
            for p in std::mem::take(&mut self.touched) {
                self.core.advance(p);
                self.dirty_checkpoint(p);
            }
            if self.job.bounded && self.input_done() {
                tracing::info!("end of input: finishing windows and pending surveys");
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

    fn on_message(
        &mut self,
        stream: Stream,
        p: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), JobError> {
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
        self.batch_bytes += payload.len();
        self.summary.consumed += 1;
        self.touched.insert(p);
        let decoded = loop {
            match self.job.decoder.decode(stream, payload) {
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "schema registry unavailable; retrying");
                    if STOP_RETRY.load(Ordering::Relaxed) {
                        return Err(JobError::Registry(e.to_string()));
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                other => break other,
            }
        };
        let (reason, detail) = match decoded {
            Ok(event) => match self.core.process(p, offset, event) {
                Ok(()) => return Ok(()),
                Err(late) => {
                    self.summary.late += 1;
                    self.job
                        .metrics
                        .late
                        .with_label_values(&[stream.label()])
                        .inc();
                    (
                        "too_late",
                        format!(
                            "event time {} ms is before the partition's lateness floor {} ms",
                            late.event_ms, late.floor_ms
                        ),
                    )
                }
            },
            Err(e) => {
                self.core.skip(stream, p, offset);
                self.job
                    .metrics
                    .decode_errors
                    .with_label_values(&[self.topics[stream as usize].as_str(), e.reason()])
                    .inc();
                (e.reason(), e.to_string())
            }
        };
        // Only rejected messages need the topic name; accepted ones returned above.
        let topic = self.topics[stream as usize].clone();
        self.summary.dead_lettered += 1;
        self.job
            .metrics
            .dead_lettered
            .with_label_values(&[reason])
            .inc();
        tracing::debug!(topic, partition = p, offset, reason, "dead-lettered");
        self.dlq
            .send(&DeadLetter {
                reason,
                detail,
                topic: &topic,
                partition: p,
                offset,
                key,
                payload,
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
                        self.core.remove(p);
                        self.assigned.remove(&p);
                        for s in Stream::ALL {
                            self.expect.remove(&(s, p));
                            self.at_eof.remove(&(s, p));
                        }
                    }
                }
                Change::Assign(parts) => self.restore(&parts)?,
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
                Some(row) => {
                    PartitionState::from_bytes(&row.state).map_err(|e| JobError::Checkpoint {
                        partition: p,
                        detail: e.to_string(),
                    })?
                }
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

    /// Hands the batch's rows to the sink, and on schedule checkpoints: rows, then dead
    /// letters, then checkpoints, then offsets, each step only after the previous one is
    /// acknowledged. The checkpoint already holds the offsets and a new assignment seeks to
    /// it, so routine commits are asynchronous (waiting for them cost seconds per flush
    /// against a busy broker); the last one before stop or revoke waits.
    fn flush(&mut self, commit: CommitMode) -> Result<(), JobError> {
        let started = Instant::now();
        let out = self.core.take_outputs();
        self.batch_bytes = 0;
        // One insert in flight: wait for the previous batch's, then start this one and go
        // back to consuming. Window rows carry versions and facts are deduplicated by id, so
        // the order two batches land in does not matter; a checkpoint waits for both.
        self.wait_rows()?;
        let flusher = self.flusher.clone();
        let (facts, windows) = (out.surveys.len() + out.contacts.len(), out.windows.len());
        self.inflight = Some(
            self.job
                .runtime
                .spawn(async move { flusher.write(&out).await }),
        );
        // Checkpoints follow sink.checkpoint_interval; the last flush before a stop or a
        // revoke always takes one. When dead letters are still in flight, a routine
        // checkpoint waits (up to three intervals) rather than block on a busy broker.
        let since = self.last_checkpoint.elapsed();
        let interval = self.job.validated.checkpoint_interval;
        let routine = matches!(commit, CommitMode::Async);
        let checkpoint_bytes = if routine
            && (since < interval || (self.dlq.in_flight() > 0 && since < interval * 3))
        {
            0
        } else {
            self.checkpoint(commit)?
        };
        self.update_gauges();
        tracing::debug!(
            facts,
            windows,
            checkpoint_bytes,
            ms = started.elapsed().as_millis() as u64,
            "flushed"
        );
        self.job
            .metrics
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Waits for the rows and dead letters so far, writes the due checkpoints and commits
    /// their offsets. Returns the checkpoint bytes written.
    fn checkpoint(&mut self, commit: CommitMode) -> Result<usize, JobError> {
        self.wait_rows()?;
        self.dlq.confirm().map_err(JobError::DeadLetter)?;
        let due: Vec<i32> = std::mem::take(&mut self.checkpoint_due)
            .into_iter()
            .collect();
        let mut rows = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for p in due {
            let Some(ps) = self.core.partition(p) else {
                continue;
            };
            let state = ps.to_bytes().map_err(|e| JobError::Checkpoint {
                partition: p,
                detail: e.to_string(),
            })?;
            let (so, io) = (ps.clocks[0].next_offset, ps.clocks[1].next_offset);
            self.checkpoint_seq += 1;
            rows.push(CheckpointRow {
                consumer_group: self.job.config.state_id().to_string(),
                source_partition: p,
                version: (((so + io).max(0) as u64) << 20) | (self.checkpoint_seq & 0xF_FFFF),
                survey_offset: so,
                interaction_offset: io,
                state,
                written_at: now_s(),
            });
            for (s, off) in [(0usize, so), (1usize, io)] {
                if off > 0 {
                    tpl.add_partition_offset(&self.topics[s], p, Offset::Offset(off))?;
                }
            }
        }
        self.job
            .runtime
            .block_on(self.job.sink.insert("checkpoints", &rows))?;
        self.last_checkpoint = Instant::now();
        self.job.metrics.checkpoints.inc_by(rows.len() as u64);
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, commit) {
                // The checkpoint already holds these offsets; the next assignment seeks to it.
                self.job.metrics.commit_errors.inc();
                tracing::warn!(error = %e, "offset commit failed");
            }
        }
        Ok(rows.iter().map(|r| r.state.len()).sum())
    }

    /// Waits for the batch insert in flight, if any.
    fn wait_rows(&mut self) -> Result<(), JobError> {
        match self.inflight.take() {
            None => Ok(()),
            Some(h) => match self.job.runtime.block_on(h) {
                Ok(r) => Ok(r?),
                Err(e) => Err(JobError::Sink(crate::sink::SinkError::Task(e.to_string()))),
            },
        }
    }

    fn update_gauges(&mut self) {
        let m = &self.job.metrics;
        for ((s, p), n) in self.consumed.drain() {
            m.consumed
                .with_label_values(&[self.topics[s as usize].as_str(), &p.to_string()])
                .inc_by(n);
        }
        let (mut contacts, mut pending, mut windows) = (0, 0, 0);
        for ps in self.core.partitions() {
            contacts += ps.join().contacts_len();
            pending += ps.join().pending_len();
            windows += ps.windows().open_len();
            let p = ps.partition.to_string();
            for s in Stream::ALL {
                let c = ps.clocks[s as usize];
                if let Some(high) =
                    cached_high_watermark(&self.consumer, &self.topics[s as usize], ps.partition)
                {
                    m.lag
                        .with_label_values(&[self.topics[s as usize].as_str(), &p])
                        .set((high - c.next_offset).max(0));
                }
                if c.floor_ms > i64::MIN {
                    m.watermark
                        .with_label_values(&[s.label(), &p])
                        .set(c.floor_ms / 1000);
                }
            }
        }
        m.state
            .with_label_values(&["join_contacts"])
            .set(contacts as i64);
        m.state
            .with_label_values(&["join_pending_surveys"])
            .set(pending as i64);
        m.state
            .with_label_values(&["open_windows"])
            .set(windows as i64);
    }
}

/// Set at shutdown so a registry outage cannot hold the process forever.
pub static STOP_RETRY: AtomicBool = AtomicBool::new(false);
