//! The Kafka job's delivery step, in one order under one policy: the batch's rows go to
//! ClickHouse (one insert in flight while the next batch is consumed); on schedule, and
//! always before a stop or a revoke, the rows are awaited, dead letters confirmed, the
//! partitions' state checkpointed with its offsets, and only then the offsets committed.

use super::setup::cached_high_watermark;
use super::{JobError, Run};
use crate::metrics::Business;
use crate::model::Stream;
use crate::pipeline::checkpoint;
use crate::sink::clickhouse::now_s;
use crate::sink::rows::CheckpointRow;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Instant;

impl Run<'_> {
    /// Hands the batch's rows to the sink, and on schedule checkpoints: rows, then dead
    /// letters, then checkpoints, then offsets, each step only after the previous one is
    /// acknowledged. The checkpoint already holds the offsets and a new assignment seeks to
    /// it, so routine commits are asynchronous (waiting for them cost seconds per flush
    /// against a busy broker); the last one before stop or revoke waits.
    pub(super) fn flush(&mut self, commit: CommitMode) -> Result<(), JobError> {
        let started = Instant::now();
        let out = self.core.take_outputs();
        self.batch_bytes = 0;
        self.job.metrics.record_evicted(&out);
        for (p, b) in Business::by_partition(&out) {
            self.business.entry(p).or_default().merge(b);
        }
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
    pub(super) fn checkpoint(&mut self, commit: CommitMode) -> Result<usize, JobError> {
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
            let state =
                checkpoint::encode(ps, &self.core.settings).map_err(|e| JobError::Checkpoint {
                    state_id: self.job.config.state_id().to_string(),
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
        // These facts can no longer be replayed: count them now, exactly once.
        for r in &rows {
            if let Some(b) = self.business.remove(&r.source_partition) {
                self.job.metrics.record(&b);
            }
        }
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
    pub(super) fn wait_rows(&mut self) -> Result<(), JobError> {
        match self.inflight.take() {
            None => Ok(()),
            Some(h) => match self.job.runtime.block_on(h) {
                Ok(r) => Ok(r?),
                Err(e) => Err(JobError::Sink(crate::sink::SinkError::Task(e.to_string()))),
            },
        }
    }

    pub(super) fn update_gauges(&mut self) {
        let m = &self.job.metrics;
        for ((s, p), n) in self.consumed.drain() {
            m.consumed
                .with_label_values(&[self.topics[s as usize].as_str(), &p.to_string()])
                .inc_by(n);
        }
        let (mut contacts, mut pending, mut windows, mut ids) = (0, 0, 0, 0);
        for ps in self.core.partitions() {
            ids += ps.ids_len();
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
        m.state.with_label_values(&["dedup_ids"]).set(ids as i64);
    }
}
