//! The committer: one flush policy, one order. The batch's rows go to ClickHouse (one insert
//! in flight while the next batch is consumed); on schedule, and always before a stop or
//! before partitions are given up, the rows are awaited, dead letters confirmed, the
//! partitions' state checkpointed with its offsets (refused if a newer owner has claimed the
//! partition), and only then the offsets committed. Business counters move only when a
//! checkpoint covers their facts, so a replay never counts them twice.

use super::batch::{Batch, Filling};
use super::dead_letter::{DeadLetter, DeadLetterProducer};
use super::store::{CheckpointStore, StoreError};
use crate::internal_events::{
    CheckpointsWritten, CommitFailed, InternalEvent, PartitionClaimed, PartitionFenced,
    PartitionReleased, PartitionsLost, RevokeFlushFailed,
};
use crate::metrics::{Business, Metrics};
use crate::model::Stream;
use crate::pipeline::Core;
use crate::sink::RowWriter;
use crate::sink::SinkError;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("dead-letter topic: {0}")]
    DeadLetter(#[from] super::dead_letter::DeadLetterError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// Why the committer closes: both write everything due and let every partition go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Close {
    /// A shutdown: open windows and pending surveys stay in the checkpoint.
    Stop,
    /// The input of a bounded run ended: open windows and pending surveys are written as
    /// provisional rows first.
    EndOfInput,
    /// The input of a `--final` run ended: it is complete, so everything settles and
    /// closes, and the checkpoints record the state as final.
    CompleteInput,
}

/// When a flush happens and how much it must do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flush {
    /// The period or a size limit is reached: rows always, a checkpoint when
    /// `sink.checkpoint_interval` has passed, an asynchronous commit.
    Routine,
    /// Before a stop or before partitions are given up: everything due is checkpointed and
    /// the commit waits.
    Final,
}

pub struct Committer {
    core: Core,
    dlq: DeadLetterProducer,
    store: CheckpointStore,
    writer: Arc<RowWriter>,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    topics: [String; 2],
    /// The previous batch's insert, still running while the next batch is consumed.
    inflight: Option<tokio::task::JoinHandle<Result<(), SinkError>>>,
    due: BTreeSet<i32>,
    last_checkpoint: Instant,
    checkpoint_interval: Duration,
    /// The batch being filled, against its policy.
    batch: Filling,
}

pub struct CommitterParts {
    pub core: Core,
    pub dlq: DeadLetterProducer,
    pub store: CheckpointStore,
    pub writer: Arc<RowWriter>,
    pub runtime: tokio::runtime::Handle,
    pub metrics: Arc<Metrics>,
    pub topics: [String; 2],
    pub checkpoint_interval: Duration,
    pub batch: Batch,
}

impl Committer {
    pub fn new(p: CommitterParts) -> Self {
        Committer {
            core: p.core,
            dlq: p.dlq,
            store: p.store,
            writer: p.writer,
            runtime: p.runtime,
            metrics: p.metrics,
            topics: p.topics,
            inflight: None,
            due: BTreeSet::new(),
            last_checkpoint: Instant::now(),
            checkpoint_interval: p.checkpoint_interval,
            batch: Filling::new(p.batch),
        }
    }

    /// Runs `fold` on the core for one message of partition `p`, counting its payload into
    /// the batch; `None` when this instance does not own `p` (fenced or lost: the rebalance
    /// that follows takes it away), and nothing is folded.
    pub fn ingest<R>(
        &mut self,
        p: i32,
        payload_len: usize,
        fold: impl FnOnce(&mut Core) -> R,
    ) -> Option<R> {
        if !self.owns(p) {
            return None;
        }
        self.batch.bytes = self.batch.bytes.saturating_add(payload_len);
        self.store.note_input(p, payload_len);
        Some(fold(&mut self.core))
    }

    /// Sends a rejected message to the dead-letter topic; confirmed before the next checkpoint.
    pub fn dead_letter(&mut self, d: &DeadLetter<'_>) -> Result<(), DeliveryError> {
        Ok(self.dlq.send(d)?)
    }

    /// The state, for gauges and reads.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The next offset the state of `p` expects on `stream` (0 when not held).
    pub fn next_offset(&self, stream: Stream, p: i32) -> i64 {
        self.core
            .partition(p)
            .map_or(0, |ps| ps.clocks[stream as usize].next_offset)
    }

    /// Moves the clocks of the partitions a poll batch touched; they are due at the next
    /// checkpoint.
    pub fn advance(&mut self, touched: impl IntoIterator<Item = i32>) {
        for p in touched {
            if self.owns(p) {
                self.core.advance(p);
                self.due.insert(p);
            }
        }
    }

    /// A routine flush when the batch policy says the batch is full; the partitions found
    /// fenced on the way (none when nothing was flushed).
    pub fn flush_if_full<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<Option<Vec<i32>>, DeliveryError> {
        if !self.batch.full(self.core.pending_rows()) {
            return Ok(None);
        }
        self.flush(consumer, Flush::Routine).map(Some)
    }

    /// The one stop sequence: everything due is written and checkpointed, offsets committed
    /// and waited for, then every partition let go, so the revoke librdkafka runs while
    /// closing the consumer has nothing left to write.
    pub fn close<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        why: Close,
    ) -> Result<Vec<i32>, DeliveryError> {
        match why {
            Close::EndOfInput => self.core.finish_all(),
            Close::CompleteInput => self.core.finish_all_final(),
            Close::Stop => {}
        }
        let owned = self.owned();
        self.due.extend(owned);
        let fenced = self.flush(consumer, Flush::Final)?;
        for p in self.owned() {
            self.release(p);
        }
        Ok(fenced)
    }

    /// Whether this instance owns the partition (claimed and neither released nor fenced).
    pub fn owns(&self, p: i32) -> bool {
        self.store.epoch(p).is_some()
    }

    pub fn owned(&self) -> Vec<i32> {
        self.store.epochs().into_keys().collect()
    }

    /// Takes partitions over: restores their state and claims a new epoch. Returns each
    /// partition with the offsets (survey, interaction) consumption resumes from.
    pub fn assign(&mut self, parts: &[i32]) -> Result<Vec<(i32, [i64; 2])>, DeliveryError> {
        let claimed = self.runtime.block_on(self.store.claim(parts))?;
        let mut out = Vec::new();
        for c in claimed {
            let p = c.state.partition;
            let offsets = [c.state.clocks[0].next_offset, c.state.clocks[1].next_offset];
            PartitionClaimed {
                partition: p,
                epoch: c.epoch,
                offsets,
                migrated: c.migrated,
                state_bytes: c.base_bytes,
            }
            .emit(&self.metrics);
            self.core.restore(c.state);
            out.push((p, offsets));
        }
        Ok(out)
    }

    /// Gives partitions up. Unless the assignment was lost (this instance was expelled and
    /// another may own them already), their state is flushed, checkpointed and committed
    /// first, while the group still waits for this member: the next owner resumes exactly
    /// there. Runs inside the rebalance callback, before librdkafka lets them go.
    pub fn revoke<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        parts: &[i32],
        lost: bool,
    ) {
        if lost {
            PartitionsLost { partitions: parts }.emit(&self.metrics);
        } else {
            let owned: Vec<i32> = parts.iter().copied().filter(|&p| self.owns(p)).collect();
            self.due.extend(owned);
            if let Err(e) = self.flush(consumer, Flush::Final) {
                RevokeFlushFailed { error: &e }.emit(&self.metrics);
            }
        }
        for &p in parts {
            self.release(p);
        }
    }

    fn release(&mut self, p: i32) {
        if self.store.epoch(p).is_some() {
            PartitionReleased { partition: p }.emit(&self.metrics);
        }
        self.store.release(p);
        self.due.remove(&p);
        self.core.remove(p);
    }

    /// Hands the batch's rows to the sink and, when due, checkpoints and commits.
    /// Returns the partitions fenced on the way.
    fn flush<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        mode: Flush,
    ) -> Result<Vec<i32>, DeliveryError> {
        let started = Instant::now();
        let out = self.core.take_outputs();
        self.batch.reset();
        self.metrics.record_evicted(&out);
        for (p, b) in Business::by_partition(&out) {
            self.store.add_counts(p, b);
        }
        // One insert in flight: wait for the previous batch's, then start this one and go
        // back to consuming. Rows carry versions and facts are replaced by id, so the order
        // two batches land in does not matter; a checkpoint waits for both.
        self.wait_rows()?;
        let writer = self.writer.clone();
        let epochs = self.store.epochs();
        self.inflight = Some(
            self.runtime
                .spawn(async move { writer.write(&out, &epochs).await }),
        );
        // A routine checkpoint waits for the interval, and (up to three intervals) for dead
        // letters still in flight rather than block on a busy broker.
        let since = self.last_checkpoint.elapsed();
        let interval = self.checkpoint_interval;
        let skip = mode == Flush::Routine
            && (since < interval || (self.dlq.in_flight() > 0 && since < interval * 3));
        let fenced = if skip {
            Vec::new()
        } else {
            self.checkpoint(consumer, mode)?
        };
        self.metrics
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(fenced)
    }

    /// Rows, then dead letters, then checkpoints, then offsets, each step only after the
    /// previous one is acknowledged. The checkpoint holds the offsets and a new owner seeks
    /// to it, so routine commits are asynchronous (waiting cost seconds per flush against a
    /// busy broker); the final one waits. Returns the partitions found fenced.
    fn checkpoint<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        mode: Flush,
    ) -> Result<Vec<i32>, DeliveryError> {
        self.wait_rows()?;
        self.dlq.confirm()?;
        let due: Vec<i32> = std::mem::take(&mut self.due).into_iter().collect();
        let states: Vec<_> = due.iter().filter_map(|&p| self.core.partition(p)).collect();
        let saved = self
            .runtime
            .block_on(self.store.save(&states, mode == Flush::Final))?;
        self.last_checkpoint = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for &p in &saved.written {
            let Some(ps) = self.core.partition(p) else {
                continue;
            };
            for (s, topic) in self.topics.iter().enumerate() {
                let off = ps.clocks[s].next_offset;
                if off > 0 {
                    tpl.add_partition_offset(topic, p, Offset::Offset(off))?;
                }
            }
        }
        CheckpointsWritten {
            partitions: saved.written.len() + saved.superseded.len(),
            bases: saved.bases,
            base_bytes: saved.base_bytes,
            bytes: saved.bytes,
        }
        .emit(&self.metrics);
        // Counts past what this partition's owners published so far: exactly once, however
        // often a replay produced the same facts again.
        for (_, b) in &saved.publish {
            self.metrics.record(b);
        }
        let mut fenced = Vec::new();
        for &(p, own_epoch, stored_epoch) in &saved.fenced {
            PartitionFenced {
                partition: p,
                own_epoch,
                stored_epoch,
            }
            .emit(&self.metrics);
            self.release(p);
            fenced.push(p);
        }
        if tpl.count() > 0 {
            let mode = match mode {
                Flush::Routine => CommitMode::Async,
                Flush::Final => CommitMode::Sync,
            };
            if let Err(e) = consumer.commit(&tpl, mode) {
                CommitFailed {
                    error: &e,
                    asynchronous: false,
                }
                .emit(&self.metrics);
            }
        }
        Ok(fenced)
    }

    /// Waits for the batch insert in flight, if any.
    fn wait_rows(&mut self) -> Result<(), DeliveryError> {
        match self.inflight.take() {
            None => Ok(()),
            Some(h) => match self.runtime.block_on(h) {
                Ok(r) => Ok(r?),
                Err(e) => Err(DeliveryError::Sink(SinkError::Task(e.to_string()))),
            },
        }
    }
}
