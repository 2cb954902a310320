//! Consumer plumbing: rebalance notices, client settings, topic checks, cached watermarks.

use super::JobError;
use crate::config::Config;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

pub(super) enum Change {
    Assign(Vec<i32>),
    Revoke(Vec<i32>),
    /// Partitions assigned on one topic without the same partition of the other: the join
    /// would run on half a pair (a member subscribed differently, another assignor).
    Unpaired(String),
}

/// Records assignment changes; the loop acts on them right after `poll` returns.
pub(super) struct Ctx {
    pub(super) changes: Mutex<Vec<Change>>,
    /// `cx_commit_errors_total`: routine commits are asynchronous, so their failures only
    /// arrive here.
    pub(super) commit_errors: prometheus::IntCounter,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        // End-of-partition is how bounded runs learn they are done, not an error.
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::error!(%error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for Ctx {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            // The checkpoint already holds these offsets; the next assignment seeks to it.
            self.commit_errors.inc();
            tracing::warn!(error = %e, "asynchronous offset commit failed");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let parts = |tpl: &TopicPartitionList| {
            tpl.elements()
                .iter()
                .map(|e| e.partition())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let change = match r {
            Rebalance::Assign(tpl) => match unpaired(tpl) {
                Some(why) => Change::Unpaired(why),
                None => Change::Assign(parts(tpl)),
            },
            Rebalance::Revoke(tpl) => Change::Revoke(parts(tpl)),
            Rebalance::Error(e) => {
                tracing::error!(error = %e, "rebalance error");
                return;
            }
        };
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(change);
    }
}

/// Names the partitions that arrived without their pair, if any. The source subscribes to
/// exactly two topics, so a partition number seen once is unpaired.
fn unpaired(tpl: &TopicPartitionList) -> Option<String> {
    let mut seen: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
    for e in tpl.elements() {
        seen.entry(e.partition())
            .or_default()
            .push(e.topic().to_string());
    }
    let alone: Vec<String> = seen
        .iter()
        .filter(|(_, topics)| topics.len() < 2)
        .map(|(p, topics)| format!("{}[{p}]", topics.join(",")))
        .collect();
    (!alone.is_empty()).then(|| alone.join(", "))
}

pub(super) fn client_config(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.brokers);
    for (k, v) in cfg.kafka_client() {
        c.set(k, v);
    }
    c
}

/// The job's consumer settings: manual commits after the sink confirmed, end-of-partition
/// events for bounded runs, short fetch waits, then the `kafka.consumer` pass-through map.
/// Public so the end-to-end benchmark's raw consumer uses exactly the same settings.
pub fn consumer_config(cfg: &Config) -> ClientConfig {
    let mut cc = client_config(cfg);
    cc.set("group.id", &cfg.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("partition.assignment.strategy", "range")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.error.backoff.ms", "50");
    for (k, v) in &cfg.kafka.consumer {
        cc.set(k, v);
    }
    cc
}

pub(super) fn check_topics(
    c: &BaseConsumer<Ctx>,
    topics: &[String; 2],
    dlq: &str,
) -> Result<i32, JobError> {
    let md = c.fetch_metadata(None, Duration::from_secs(15))?;
    let count = |name: &str| {
        md.topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
    };
    let (s, i) = (count(&topics[0]), count(&topics[1]));
    let n = match (s, i) {
        (Some(s), Some(i)) if s == i => i32::try_from(s).unwrap_or(i32::MAX),
        (Some(s), Some(i)) => {
            return Err(JobError::Topics(format!(
                "{} has {s} partitions but {} has {i}: both topics must have the same partition count (co-partitioned by customer_id)",
                topics[0], topics[1]
            )))
        }
        _ => {
            let missing: Vec<&str> = topics.iter().filter(|t| count(t).is_none()).map(String::as_str).collect();
            return Err(JobError::Topics(format!("input topic(s) not found: {}", missing.join(", "))));
        }
    };
    if count(dlq).is_none() {
        return Err(JobError::Topics(format!(
            "dead-letter topic {dlq} not found; create it (kafka.dead_letter_topic)"
        )));
    }
    Ok(n)
}

/// The high watermark librdkafka learned from its last fetch response. Unlike
/// `fetch_watermarks` it sends no request: on a busy connection a ListOffsets request can
/// queue behind long-poll fetches and time out.
pub(super) fn cached_high_watermark(c: &BaseConsumer<Ctx>, topic: &str, p: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime, the topic is a valid
    // C string for the call, and librdkafka only writes the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            c.client().native_ptr(),
            topic.as_ptr(),
            p,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stub of the one fault a healthy test broker does not produce on demand: the
    /// callback librdkafka makes when an asynchronous commit fails.
    #[test]
    fn failed_asynchronous_commits_are_counted() {
        let counter = prometheus::IntCounter::new("c", "c").unwrap_or_else(|e| panic!("{e}"));
        let ctx = Ctx {
            changes: Mutex::new(Vec::new()),
            commit_errors: counter.clone(),
        };
        let tpl = TopicPartitionList::new();
        ctx.commit_callback(Ok(()), &tpl);
        assert_eq!(counter.get(), 0);
        ctx.commit_callback(
            Err(KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::RebalanceInProgress,
            )),
            &tpl,
        );
        assert_eq!(counter.get(), 1);
    }
}
