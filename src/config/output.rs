//! The `[clickhouse]`, `[sink]` and `[metrics]` sections: where results go, how they are
//! batched, and where /metrics is served.

use super::duration;
use crate::delivery::Batch;
use crate::secret::Secret;
use crate::secret::Url;
use crate::sink::{ClickHouseSettings, Compression};
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// Empty disables ClickHouse (embedded demo only; the Kafka job needs it).
    pub url: Url,
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
            url: Url::default(),
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

impl ClickHouseConfig {
    pub(super) fn validate(&self, errs: &mut Vec<String>) -> ClickHouseSettings {
        let url = &self.url;
        super::http_url("clickhouse.url", url, errs);
        let ident =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        for (key, v) in [
            ("clickhouse.database", &self.database),
            ("clickhouse.demo_database", &self.demo_database),
        ] {
            if !ident(v) {
                errs.push(format!("{key} must be a plain identifier ([A-Za-z0-9_])"));
            }
        }
        let timeout = duration("clickhouse.timeout", &self.timeout, errs);
        if timeout.is_zero() {
            errs.push("clickhouse.timeout must be > 0".into());
        }
        ClickHouseSettings {
            url: self.url.clone(),
            database: self.database.clone(),
            demo_database: self.demo_database.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            compression: self.compression,
            timeout,
            ca_file: self.ca_file.clone(),
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
    /// A checkpoint writes the whole state (a base) when the input since the last base
    /// reaches half its size, and at least this often; the checkpoints in between are small
    /// marks and a restore reads the input since the base again. Keep it well below the
    /// input topics' retention.ms: a replay must find its records.
    pub snapshot_max_age: String,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            period: "2s".into(),
            checkpoint_interval: "10s".into(),
            snapshot_max_age: "24h".into(),
        }
    }
}

impl SinkConfig {
    /// The batch policy, the checkpoint interval and the longest a base may age.
    pub(super) fn validate(&self, errs: &mut Vec<String>) -> (Batch, Duration, Duration) {
        if self.max_rows == 0 {
            errs.push("sink.max_rows must be > 0".into());
        }
        if self.max_bytes < 1024 {
            errs.push("sink.max_bytes must be at least 1024".into());
        }
        let period = duration("sink.period", &self.period, errs);
        let interval = duration("sink.checkpoint_interval", &self.checkpoint_interval, errs);
        let max_age = duration("sink.snapshot_max_age", &self.snapshot_max_age, errs);
        if max_age < interval {
            errs.push(format!(
                "sink.snapshot_max_age ({}) must not be shorter than sink.checkpoint_interval ({})",
                self.snapshot_max_age, self.checkpoint_interval
            ));
        }
        let batch = Batch {
            max_rows: self.max_rows,
            max_bytes: self.max_bytes,
            period,
        };
        (batch, interval, max_age)
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

impl MetricsConfig {
    pub(super) fn validate(&self, errs: &mut Vec<String>) {
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            errs.push(format!(
                "metrics.listen = {:?} is not an address like 127.0.0.1:9898",
                self.listen
            ));
        }
    }
}
