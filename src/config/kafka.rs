//! The `[kafka]` and `[codec]` sections: where the job reads and how payloads are framed.

use crate::codec::{Budget, LookupPolicy, WireFormat};
use crate::secret::{Passthrough, Secret, Url};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    pub survey_topic: String,
    pub interaction_topic: String,
    pub dead_letter_topic: String,
    /// Largest payload a dead letter carries; a bigger one is cut to this size (headers say
    /// so), so a message the producer or broker would refuse never stops the job. Keep the
    /// dead-letter topic's `max.message.bytes` above it.
    pub dead_letter_max_bytes: usize,
    /// Passed to librdkafka as is (security.protocol, sasl.mechanism, ssl.ca.location, ...).
    pub client: Passthrough,
    /// Consumer-only librdkafka settings (session.timeout.ms, fetch.max.bytes, ...).
    pub consumer: Passthrough,
    /// Merged into `client` as sasl.password; prefer the CXP_KAFKA_SASL_PASSWORD variable.
    pub sasl_password: Option<Secret>,
    /// Name the partition checkpoints are stored under; defaults to `group_id`. Set it to
    /// the old group's name when moving a deployment to a new consumer group, so the new
    /// group resumes from the old state instead of starting empty.
    pub state_id: Option<String>,
    /// Static group membership (Kafka's `group.instance.id`, KIP-345): an instance that
    /// restarts under the same id within `session.timeout.ms` gets its partitions back
    /// without a rebalance, so a rolling restart moves no other instance's state. Unique
    /// per instance (the pod name: CXP_GROUP_INSTANCE_ID); unset, membership is dynamic.
    pub group_instance_id: Option<String>,
    /// While catching up, a partition's stream that is this far ahead of the other in event
    /// time is paused until the other catches up or is read to its end, so surveys do not
    /// wait pending (and windows stay open) for a backlog of contacts still unread. Changes
    /// when rows are written, never what they hold. "0s" turns it off.
    pub max_stream_skew: String,
    /// Removed: a quiet stream no longer moves its pair's clock (docs/SEMANTICS.md). Kept
    /// only to name it in the error an old config gets.
    pub idle_timeout: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "cx-pipeline".into(),
            survey_topic: "survey-responses".into(),
            interaction_topic: "support-interactions".into(),
            dead_letter_topic: "cx-dead-letter".into(),
            dead_letter_max_bytes: 900_000,
            client: Passthrough::default(),
            consumer: Passthrough::default(),
            sasl_password: None,
            state_id: None,
            group_instance_id: None,
            max_stream_skew: "1h".into(),
            idle_timeout: None,
        }
    }
}

impl KafkaConfig {
    pub(super) fn validate(&self, errs: &mut Vec<String>) {
        let k = self;
        for (key, v) in [
            ("kafka.brokers", &k.brokers),
            ("kafka.group_id", &k.group_id),
            ("kafka.survey_topic", &k.survey_topic),
            ("kafka.interaction_topic", &k.interaction_topic),
            ("kafka.dead_letter_topic", &k.dead_letter_topic),
        ] {
            if v.trim().is_empty() {
                errs.push(format!("{key} must not be empty"));
            }
        }
        if !(1024..=100_000_000).contains(&k.dead_letter_max_bytes) {
            errs.push("kafka.dead_letter_max_bytes must be between 1024 and 100000000".into());
        }
        if k.survey_topic == k.interaction_topic {
            errs.push("kafka.interaction_topic must differ from kafka.survey_topic".into());
        }
        for (section, map) in [("client", &k.client), ("consumer", &k.consumer)] {
            if let Some(v) = map.get("partition.assignment.strategy") {
                if v.trim() != "range" {
                    errs.push(format!(
                        "kafka.{section}.\"partition.assignment.strategy\" = {v:?}: only \"range\" \
                         keeps partition p of both topics on one instance, which the join needs"
                    ));
                }
            }
            if let Some(v) = map.get("group.protocol") {
                if v.trim() != "classic" {
                    errs.push(format!(
                        "kafka.{section}.\"group.protocol\" = {v:?}: only \"classic\" is supported; \
                         the consumer protocol (KIP-848) assigns partitions incrementally on the \
                         broker, which the job's rebalance handling does not do yet; for rolling \
                         restarts without rebalances set kafka.group_instance_id"
                    ));
                }
            }
        }
        for key in [
            "bootstrap.servers",
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
        ] {
            for (section, map) in [("client", &k.client), ("consumer", &k.consumer)] {
                if map.contains_key(key) {
                    errs.push(format!(
                        "kafka.{section}.\"{key}\" is managed by the pipeline; drop it"
                    ));
                }
            }
        }
        super::duration("kafka.max_stream_skew", &k.max_stream_skew, errs);
        if k.idle_timeout.is_some() {
            errs.push(
                "kafka.idle_timeout was removed: a quiet stream no longer moves its pair's clock \
                 (results must not depend on wall-clock pauses); delete the key"
                    .into(),
            );
        }
    }

    /// [`Self::max_stream_skew`] in ms (0: off); validated at startup.
    pub fn max_stream_skew_ms(&self) -> i64 {
        humantime::parse_duration(&self.max_stream_skew).map_or(0, super::millis)
    }

    /// Key of this deployment's checkpoints.
    pub fn state_id(&self) -> &str {
        self.state_id.as_deref().unwrap_or(&self.group_id)
    }

    /// librdkafka settings: the pass-through map plus the SASL password, if any.
    pub fn client_settings(&self) -> BTreeMap<String, String> {
        let mut m = (*self.client).clone();
        if let Some(p) = &self.sasl_password {
            m.insert("sasl.password".into(), p.expose().to_string());
        }
        m
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodecConfig {
    pub format: WireFormat,
    pub schema_registry_url: Option<Url>,
    pub schema_registry_user: Option<String>,
    pub schema_registry_password: Option<Secret>,
    /// A private CA (PEM) for an `https://` registry URL, besides the system's roots.
    pub schema_registry_ca_file: Option<String>,
    /// Directory with the reader schemas; the embedded copies when unset.
    pub schemas_dir: Option<PathBuf>,
    /// A bigger payload is dead-lettered as `resource_limit` unread.
    pub max_message_bytes: usize,
    /// Fields, items, entries and branches one datum may hold (`codec::budget`).
    pub max_values_per_message: u64,
    /// Registry requests per second per topic for ids not yet cached; more wait their turn.
    pub schema_lookups_per_second: f64,
    /// Writer schemas (and unknown ids) kept; the least recently used goes first.
    pub max_cached_schemas: usize,
    /// Schema text of the kept writer schemas, in bytes, at most (registry answers can be
    /// up to 4 MiB each); the least recently used go first.
    pub max_cached_schema_bytes: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            format: WireFormat::Confluent,
            schema_registry_url: Some("http://127.0.0.1:8081".into()),
            schema_registry_user: None,
            schema_registry_password: None,
            schema_registry_ca_file: None,
            schemas_dir: None,
            max_message_bytes: Budget::default().max_message_bytes,
            max_values_per_message: Budget::default().max_values,
            schema_lookups_per_second: LookupPolicy::default().per_second,
            max_cached_schemas: LookupPolicy::default().max_cached,
            max_cached_schema_bytes: LookupPolicy::default().max_cached_bytes,
        }
    }
}

impl CodecConfig {
    pub(super) fn validate(&self, errs: &mut Vec<String>) {
        if self.format == WireFormat::Confluent
            && self.schema_registry_url.as_deref().unwrap_or("").is_empty()
        {
            errs.push(
                "codec.schema_registry_url is required when codec.format = \"confluent\"".into(),
            );
        }
        if self.max_message_bytes == 0 {
            errs.push("codec.max_message_bytes must be > 0".into());
        }
        if self.max_values_per_message == 0 {
            errs.push("codec.max_values_per_message must be > 0".into());
        }
        if !(self.schema_lookups_per_second.is_finite() && self.schema_lookups_per_second > 0.0) {
            errs.push("codec.schema_lookups_per_second must be a number > 0".into());
        }
        if self.max_cached_schemas == 0 {
            errs.push("codec.max_cached_schemas must be > 0".into());
        }
        if self.max_cached_schema_bytes < 1 << 20 {
            errs.push("codec.max_cached_schema_bytes must be at least 1048576 (1 MiB)".into());
        }
    }

    /// What one message may cost to decode.
    pub fn budget(&self) -> Budget {
        Budget {
            max_message_bytes: self.max_message_bytes,
            max_values: self.max_values_per_message,
        }
    }

    /// How writer schemas are looked up and kept.
    pub fn lookups(&self) -> LookupPolicy {
        LookupPolicy {
            per_second: self.schema_lookups_per_second,
            max_cached: self.max_cached_schemas,
            max_cached_bytes: self.max_cached_schema_bytes,
            ..LookupPolicy::default()
        }
    }
}
