//! Configuration: TOML file -> typed config -> `validate()` (pure, lists every problem with
//! its key) -> settings the stages build from. Addresses and secrets can be overridden by
//! environment variables so deployments keep secrets out of files.

mod detector;
mod ingest;

use crate::codec::WireFormat;
use crate::join::{AttributionPolicy, JoinConfig};
use crate::pipeline::Settings;
use crate::window::{Grouping, WindowConfig};
pub use detector::{DetectorSection, DetectorSettings};
pub use ingest::IngestSection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A value that must never be printed. Debug shows a placeholder.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub codec: CodecConfig,
    pub join: JoinSection,
    pub window: WindowSection,
    pub clickhouse: ClickHouseConfig,
    pub sink: SinkConfig,
    pub metrics: MetricsConfig,
    pub ingest: IngestSection,
    pub detector: DetectorSection,
}

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
    pub client: BTreeMap<String, String>,
    /// Consumer-only librdkafka settings (session.timeout.ms, fetch.max.bytes, ...).
    pub consumer: BTreeMap<String, String>,
    /// Merged into `client` as sasl.password; prefer the CXP_KAFKA_SASL_PASSWORD variable.
    pub sasl_password: Option<Secret>,
    /// Name the partition checkpoints are stored under; defaults to `group_id`. Set it to
    /// the old group's name when moving a deployment to a new consumer group, so the new
    /// group resumes from the old state instead of starting empty.
    pub state_id: Option<String>,
    /// Removed: a quiet stream no longer moves its pair's clock (README, Semantics). Kept
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
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            sasl_password: None,
            state_id: None,
            idle_timeout: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodecConfig {
    pub format: WireFormat,
    pub schema_registry_url: Option<String>,
    pub schema_registry_user: Option<String>,
    pub schema_registry_password: Option<Secret>,
    /// A private CA (PEM) for an `https://` registry URL, besides the system's roots.
    pub schema_registry_ca_file: Option<String>,
    /// Directory with the reader schemas; the embedded copies when unset.
    pub schemas_dir: Option<PathBuf>,
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
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinSection {
    pub attribution: AttributionPolicy,
    pub lookback: String,
    pub max_wait: String,
    pub max_contacts_per_partition: usize,
    pub max_pending_per_partition: usize,
}

impl Default for JoinSection {
    fn default() -> Self {
        JoinSection {
            attribution: AttributionPolicy::Last,
            lookback: "7d".into(),
            max_wait: "10m".into(),
            max_contacts_per_partition: 2_000_000,
            max_pending_per_partition: 500_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    pub sizes: Vec<String>,
    pub out_of_orderness: String,
    pub allowed_lateness: String,
    /// How far behind its stream an event may be and still revise its windows.
    pub late_horizon: String,
    pub grouping_sets: Vec<Vec<String>>,
}

impl Default for WindowSection {
    fn default() -> Self {
        WindowSection {
            sizes: vec!["1m".into(), "1h".into(), "1d".into()],
            out_of_orderness: "30s".into(),
            allowed_lateness: "5m".into(),
            late_horizon: "7d".into(),
            grouping_sets: vec![
                vec![],
                vec!["region".into()],
                vec!["team".into()],
                vec!["channel".into(), "bucket".into()],
                vec!["agent".into()],
                vec!["product".into()],
                vec!["tier".into()],
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// LZ4 on servers that honour it, none on the old ones that silently drop it.
    #[default]
    Auto,
    Lz4,
    None,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// Empty disables ClickHouse (embedded demo only; the Kafka job needs it).
    pub url: String,
    pub database: String,
    /// Where `demo` writes its synthetic rows: never the pipeline's database.
    pub demo_database: String,
    pub user: String,
    pub password: Secret,
    pub compression: Compression,
    /// One request's limit; a hung server counts as a failed attempt and is retried.
    pub timeout: String,
    /// A private CA (PEM) for an `https://` URL, besides the system's trusted roots.
    pub ca_file: Option<String>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: String::new(),
            database: "cx".into(),
            demo_database: "cx_demo".into(),
            user: "default".into(),
            password: Secret::default(),
            compression: Compression::Auto,
            timeout: "30s".into(),
            ca_file: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Flush when this many rows are buffered...
    pub max_rows: usize,
    /// ...or this many payload bytes were consumed (bounds memory held between flushes)...
    pub max_bytes: usize,
    /// ...or this much time has passed since the last flush.
    pub period: String,
    /// How often a flush also confirms dead letters, checkpoints state and commits offsets.
    /// Longer: less state serialized and fewer broker round trips; shorter: less replay
    /// after a crash (replays are idempotent either way).
    pub checkpoint_interval: String,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            period: "2s".into(),
            checkpoint_interval: "10s".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address for GET /metrics; empty disables the endpoint.
    pub listen: String,
    /// Most label combinations per business metric; the rest are counted under "other".
    pub max_label_sets: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9898".into(),
            max_label_sets: 500,
        }
    }
}

/// Everything wrong with a config, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// Durations and settings derived from a valid config.
#[derive(Clone, Debug)]
pub struct Validated {
    pub settings: Settings,
    pub flush_period: Duration,
    pub checkpoint_interval: Duration,
    pub detector: DetectorSettings,
}

/// Milliseconds of a duration, saturating: a config may say "1000000y".
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration(key: &str, s: &str, errs: &mut Vec<String>) -> Duration {
    match humantime::parse_duration(s) {
        Ok(d) => d,
        Err(e) => {
            errs.push(format!(
                "{key} = {s:?}: {e} (use e.g. \"30s\", \"10m\", \"7d\")"
            ));
            Duration::ZERO
        }
    }
}

impl Config {
    /// Reads a TOML file (or the defaults when `path` is None) and applies env overrides.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut cfg: Config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", p.display())]))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", p.display())]))?
            }
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Pure checks; every problem is reported at once.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let mut errs = Vec::new();
        let k = &self.kafka;
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
        if k.idle_timeout.is_some() {
            errs.push(
                "kafka.idle_timeout was removed: a quiet stream no longer moves its pair's clock \
                 (results must not depend on wall-clock pauses); delete the key"
                    .into(),
            );
        }
        if self.codec.format == WireFormat::Confluent
            && self
                .codec
                .schema_registry_url
                .as_deref()
                .unwrap_or("")
                .is_empty()
        {
            errs.push(
                "codec.schema_registry_url is required when codec.format = \"confluent\"".into(),
            );
        }
        let lookback = duration("join.lookback", &self.join.lookback, &mut errs);
        let max_wait = duration("join.max_wait", &self.join.max_wait, &mut errs);
        if self.join.max_contacts_per_partition == 0 {
            errs.push("join.max_contacts_per_partition must be > 0".into());
        }
        if self.join.max_pending_per_partition == 0 {
            errs.push("join.max_pending_per_partition must be > 0".into());
        }
        let w = &self.window;
        let mut sizes_ms = Vec::new();
        for (i, s) in w.sizes.iter().enumerate() {
            let d = duration(&format!("window.sizes[{i}]"), s, &mut errs);
            if d.as_millis() > 0 && d.as_millis() % 1000 == 0 {
                sizes_ms.push(d.as_millis() as i64);
            } else if !d.is_zero() {
                errs.push(format!(
                    "window.sizes[{i}] = {s:?} must be a whole number of seconds"
                ));
            } else {
                errs.push(format!("window.sizes[{i}] must be > 0"));
            }
        }
        if w.sizes.is_empty() {
            errs.push("window.sizes must name at least one size".into());
        }
        let ooo = duration("window.out_of_orderness", &w.out_of_orderness, &mut errs);
        let lateness = duration("window.allowed_lateness", &w.allowed_lateness, &mut errs);
        let horizon = duration("window.late_horizon", &w.late_horizon, &mut errs);
        if horizon < ooo + lateness {
            errs.push(format!(
                "window.late_horizon = {:?} must be at least out_of_orderness + allowed_lateness",
                w.late_horizon
            ));
        }
        let limits = self.ingest.validate(&mut errs);
        let mut groupings = Vec::new();
        for (i, g) in w.grouping_sets.iter().enumerate() {
            match Grouping::new(g) {
                Ok(g) if groupings.iter().any(|x: &Grouping| x.mask == g.mask) => {
                    errs.push(format!("window.grouping_sets[{i}] repeats {:?}", g.name))
                }
                Ok(g) => groupings.push(g),
                Err(e) => errs.push(format!("window.grouping_sets[{i}]: {e}")),
            }
        }
        let masks: Vec<u8> = groupings.iter().map(|g| g.mask).collect();
        let detector = self.detector.validate(&masks, &mut errs);
        if w.grouping_sets.is_empty() {
            errs.push("window.grouping_sets must have at least one set ([] is overall)".into());
        }
        if groupings.len() > 32 {
            errs.push("window.grouping_sets: at most 32 sets".into());
        }
        let url = &self.clickhouse.url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            errs.push(format!(
                "clickhouse.url = {:?} must start with http:// or https://",
                self.clickhouse.url
            ));
        }
        let ident =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        for (key, v) in [
            ("clickhouse.database", &self.clickhouse.database),
            ("clickhouse.demo_database", &self.clickhouse.demo_database),
        ] {
            if !ident(v) {
                errs.push(format!("{key} must be a plain identifier ([A-Za-z0-9_])"));
            }
        }
        if duration("clickhouse.timeout", &self.clickhouse.timeout, &mut errs).is_zero() {
            errs.push("clickhouse.timeout must be > 0".into());
        }
        if self.sink.max_rows == 0 {
            errs.push("sink.max_rows must be > 0".into());
        }
        if self.sink.max_bytes < 1024 {
            errs.push("sink.max_bytes must be at least 1024".into());
        }
        let flush_period = duration("sink.period", &self.sink.period, &mut errs);
        let checkpoint_interval = duration(
            "sink.checkpoint_interval",
            &self.sink.checkpoint_interval,
            &mut errs,
        );
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            errs.push(format!(
                "metrics.listen = {:?} is not an address like 127.0.0.1:9898",
                self.metrics.listen
            ));
        }
        if !errs.is_empty() {
            return Err(ConfigError(errs));
        }
        Ok(Validated {
            settings: Settings {
                join: JoinConfig {
                    policy: self.join.attribution,
                    lookback_ms: millis(lookback),
                    max_wait_ms: millis(max_wait),
                    max_contacts: self.join.max_contacts_per_partition,
                    max_pending: self.join.max_pending_per_partition,
                },
                window: WindowConfig::new(sizes_ms, groupings),
                out_of_orderness_ms: millis(ooo),
                allowed_lateness_ms: millis(lateness),
                late_horizon_ms: millis(horizon),
                limits,
            },
            flush_period,
            checkpoint_interval,
            detector,
        })
    }

    /// Key of this deployment's checkpoints.
    pub fn state_id(&self) -> &str {
        self.kafka
            .state_id
            .as_deref()
            .unwrap_or(&self.kafka.group_id)
    }

    /// librdkafka settings: the pass-through map plus the SASL password, if any.
    pub fn kafka_client(&self) -> BTreeMap<String, String> {
        let mut m = self.kafka.client.clone();
        if let Some(p) = &self.kafka.sasl_password {
            m.insert("sasl.password".into(), p.expose().to_string());
        }
        m
    }
}

mod env;
#[cfg(test)]
mod tests;
