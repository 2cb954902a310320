//! Consumer plumbing: rebalance notices, client settings, topic checks, cached watermarks.

use super::describe::describe_topics;
use super::JobError;
use crate::config::KafkaConfig;
use crate::delivery::format::{SourceIdentity, TopicIdentity};
use crate::delivery::Committer;
use crate::internal_events::{CommitFailed, InternalEvent};
use crate::metrics::Metrics;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub(super) enum Change {
    Assign(Vec<i32>),
    Revoke(Vec<i32>),
    /// Partitions assigned on one topic without the same partition of the other: the join
    /// would run on half a pair (a member subscribed differently, another assignor).
    Unpaired(String),
}

/// Records assignment changes; the loop acts on them right after `poll` returns. Giving
/// partitions up is different: their state must be written while the group still waits
/// for this member, so the revoke runs the committer's final flush inside the callback.
pub(super) struct Ctx {
    pub(super) changes: Mutex<Vec<Change>>,
    /// The last error librdkafka reported (authentication, TLS, transport), so a failed
    /// startup can say why instead of "timed out".
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) metrics: Arc<Metrics>,
    /// Set once the committer exists (it needs the consumer's client to be created first).
    pub(super) committer: OnceLock<Arc<Mutex<Committer>>>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        // End-of-partition is how bounded runs learn they are done, not an error.
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            // librdkafka's reasons name brokers, mechanisms and certificate problems, never
            // passwords.
            tracing::error!(%error, reason, "librdkafka error");
            // "All brokers are down" follows every refused handshake: keeping it would hide
            // the reason (a refused certificate, bad credentials) that the one before named.
            if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
            {
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(reason.to_string());
            }
        }
    }
}

fn parts(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements()
        .iter()
        .map(|e| e.partition())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl ConsumerContext for Ctx {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            // Routine commits are asynchronous, so their failures only arrive here.
            CommitFailed {
                error: &e,
                asynchronous: true,
            }
            .emit(&self.metrics);
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            let parts = parts(tpl);
            if let Some(c) = self.committer.get() {
                let lost = consumer.assignment_lost();
                c.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .revoke(consumer, &parts, lost);
            }
            self.changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Change::Revoke(parts));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let change = match r {
            Rebalance::Assign(tpl) => match unpaired(tpl) {
                Some(why) => Change::Unpaired(why),
                None => Change::Assign(parts(tpl)),
            },
            Rebalance::Revoke(_) => return, // handled before the partitions went
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

pub(super) fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in cfg.client_settings() {
        c.set(k, v);
    }
    c
}

/// The job's consumer settings: manual commits after the sink confirmed, end-of-partition
/// events for bounded runs, short fetch waits, then the `kafka.consumer` pass-through map.
/// Public so the end-to-end benchmark's raw consumer uses exactly the same settings.
pub fn consumer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut cc = client_config(cfg);
    cc.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("partition.assignment.strategy", "range")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.error.backoff.ms", "50");
    if let Some(id) = cfg.group_instance_id.as_deref().filter(|id| !id.is_empty()) {
        cc.set("group.instance.id", id);
    }
    for (k, v) in cfg.consumer.iter() {
        cc.set(k, v);
    }
    cc
}

/// Checks the topics before joining the group and says what the job reads: both input
/// topics exist with one partition count, the dead-letter topic exists and (where the
/// broker reports permissions) this client may write to it, so a missing ACL stops the job
/// now instead of at the first reject. Returns the source identity checkpoints record.
pub(super) fn check_topics(
    c: &BaseConsumer<Ctx>,
    cfg: &KafkaConfig,
) -> Result<SourceIdentity, JobError> {
    let topics = [cfg.survey_topic.clone(), cfg.interaction_topic.clone()];
    let dlq = cfg.dead_letter_topic.as_str();
    let md = connect(c, cfg)?;
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
    let described = match describe_topics(
        c.client().native_ptr(),
        &[&topics[0], &topics[1], dlq],
        Duration::from_secs(15),
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot describe topics (broker before Kafka 2.8?): topic ids and the dead-letter write permission are not checked");
            Vec::new()
        }
    };
    let info = |name: &str| described.iter().find(|t| t.name == name);
    if let Some(d) = info(dlq) {
        if d.writable == Some(false) || d.error.is_some() {
            return Err(JobError::Topics(format!(
                "dead-letter topic: this client may not write to {dlq} ({}); grant WRITE on the topic to the job's principal (kafka.dead_letter_topic)",
                d.error.as_deref().unwrap_or("no WRITE among its authorized operations")
            )));
        }
    }
    let topic = |name: &String| TopicIdentity {
        name: name.clone(),
        id: info(name).and_then(|t| t.id.clone()),
        partitions: n,
    };
    let cluster_id = c.client().fetch_cluster_id(Duration::from_secs(15));
    if cluster_id.is_none() {
        tracing::warn!("the broker gave no cluster id in 15 s: the one the checkpoints recorded is kept, and a failover to another cluster is not checked at this start");
    }
    Ok(SourceIdentity {
        cluster_id,
        topics: [topic(&topics[0]), topic(&topics[1])],
    })
}

/// Fetches cluster metadata, serving librdkafka's error events in between attempts: an
/// authentication or TLS failure stops the job at once with librdkafka's reason (wrong
/// password, unknown CA, expired certificate), anything else after 15 s with the last reason.
fn connect(
    c: &BaseConsumer<Ctx>,
    cfg: &KafkaConfig,
) -> Result<rdkafka::metadata::Metadata, JobError> {
    let start = std::time::Instant::now();
    loop {
        let res = c.fetch_metadata(None, Duration::from_secs(2));
        // Serves the queued events (logs, errors) so `Ctx::error` has seen the latest reason.
        // One poll returns at the first error event, and a failing TLS or SASL handshake
        // queues several per attempt: without draining, the reason arrives attempts late and
        // a certificate problem is reported without its cause. Nothing is subscribed yet, so
        // no message can be consumed here; the drain is bounded (at most ~2 s).
        for _ in 0..100 {
            if c.poll(Duration::from_millis(20)).is_none() {
                break;
            }
        }
        let why = c
            .context()
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match res {
            Ok(md) => return Ok(md),
            Err(e) => {
                let fatal = why.as_deref().is_some_and(|w| {
                    ["SASL", "SSL", "certificate", "uthenticat"]
                        .iter()
                        .any(|k| w.contains(k))
                });
                if fatal || start.elapsed() > Duration::from_secs(15) {
                    let cert = why
                        .as_deref()
                        .filter(|w| w.contains("certificate verify failed"))
                        .and_then(|_| {
                            let ca = cfg.client.get("ssl.ca.location").map(String::as_str);
                            super::diagnose::certificate_problem(&cfg.brokers, ca)
                        })
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default();
                    return Err(JobError::Connect(format!(
                        "{e}{}{cert}; check kafka.brokers and the [kafka.client] security settings (security.protocol, sasl.*, ssl.*) and CXP_KAFKA_SASL_PASSWORD",
                        why.map(|w| format!(": {w}")).unwrap_or_default()
                    )));
                }
            }
        }
    }
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
        let metrics = Arc::new(Metrics::new(10));
        let counter = metrics.commit_errors.clone();
        let ctx = Ctx {
            changes: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
            metrics,
            committer: OnceLock::new(),
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
