//! Configuration: TOML file -> [`Config`] (serde, unknown keys refused) -> [`Config::validate`]
//! (pure; every section checks itself and every problem is listed with its key) ->
//! [`Validated`], the typed settings the jobs are built from. Only `Validated` travels past
//! startup. Addresses and secrets can be overridden by environment variables so deployments
//! keep secrets out of files.

mod detector;
mod env;
mod ingest;
mod kafka;
mod output;
mod processing;

pub use crate::secret::Secret;
pub use detector::{DetectorSection, DetectorSettings};
pub use ingest::IngestSection;
pub use kafka::{CodecConfig, KafkaConfig};
pub use output::{ClickHouseConfig, MetricsConfig, SinkConfig};
pub use processing::{JoinSection, WindowSection};

use crate::delivery::Batch;
use crate::pipeline::Settings;
use crate::sink::ClickHouseSettings;
use serde::Deserialize;
use std::time::Duration;

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

/// Everything wrong with a config, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// A valid config, typed: what every job is built from.
#[derive(Clone, Debug)]
pub struct Validated {
    /// The processing core's settings (join, windows, lateness, limits).
    pub settings: Settings,
    pub kafka: KafkaConfig,
    pub codec: CodecConfig,
    pub clickhouse: ClickHouseSettings,
    /// When a batch of rows goes to the sink.
    pub batch: Batch,
    /// How often a flush also confirms dead letters, checkpoints state and commits offsets.
    pub checkpoint_interval: Duration,
    pub snapshot_max_age: Duration,
    pub metrics: MetricsConfig,
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

/// A TOML error as it may be printed: file, line and column, and the parser's message,
/// never the offending line itself, which may hold a secret (a password under a misspelled
/// key, an unterminated string). A value the message quotes (a type mismatch) is redacted.
/// An empty URL (unset) or one starting with http:// or https://. Only the scheme is quoted
/// in the error: the rest may carry user:password@ even when the scheme is wrong
/// (`clickhouse://default:pw@host`) or missing (`default:pw@host:8123`).
fn http_url(key: &str, url: &str, errs: &mut Vec<String>) {
    if url.is_empty() || url.starts_with("http://") || url.starts_with("https://") {
        return;
    }
    let scheme: String = url
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        .take(16)
        .collect();
    errs.push(format!(
        "{key} must start with http:// or https:// (it starts with {scheme:?})"
    ));
}

/// ` (section.key)` for the key on the offending line, so a type error names the setting
/// and not only a position; empty when the line holds no plain key.
fn dotted_key(before: &str, name: &str) -> String {
    // A bare key, or one whole quoted key: anything else on the line (a typo such as
    // `password"..."`) may hold a secret and is never echoed.
    let name = name.trim();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name);
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if !plain(name) {
        return String::new();
    }
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']'));
    match section {
        Some(sec) if plain(sec) => format!(" ({sec}.{name})"),
        _ => format!(" ({name})"),
    }
}

fn parse_error(path: &std::path::Path, text: &str, e: &toml::de::Error) -> String {
    let span = e.span().and_then(|r| text.get(..r.start));
    let mut message = e.message().to_string();
    let at = match span {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            // The value on the offending line, if the message repeats it.
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line_text = text.get(line_start..).and_then(|t| t.lines().next());
            let line_text = line_text.unwrap_or("");
            let mut key = String::new();
            if let Some((name, value)) = line_text.split_once('=') {
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                if !value.is_empty() && message.contains(value) {
                    message = message.replace(value, "<redacted>");
                }
                key = dotted_key(before, name);
            }
            format!(", line {line}, column {column}{key}")
        }
        None => String::new(),
    };
    format!("{}{at}: {}", path.display(), message.trim_end())
}

impl Config {
    /// Reads a TOML file (or the defaults when `path` is None) and applies env overrides.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut cfg: Config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", p.display())]))?;
                Self::parse(p, &text)?
            }
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Parses a config file's text; a syntax or type error names `path`, line and column,
    /// never the text (it may hold a secret).
    pub fn parse(path: &std::path::Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(vec![parse_error(path, text, &e)]))
    }

    /// Pure checks, section by section; every problem is reported at once.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let mut errs = Vec::new();
        self.kafka.validate(&mut errs);
        self.codec.validate(&mut errs);
        let windows = self.window.validate(&mut errs);
        let join = self.join.validate(&windows, &mut errs);
        let limits = self.ingest.validate(&mut errs);
        let masks: Vec<u8> = windows.config.groupings.iter().map(|g| g.mask).collect();
        let detector = self.detector.validate(&masks, &mut errs);
        let clickhouse = self.clickhouse.validate(&mut errs);
        let (batch, checkpoint_interval, snapshot_max_age) = self.sink.validate(&mut errs);
        self.metrics.validate(&mut errs);
        if !errs.is_empty() {
            return Err(ConfigError(errs));
        }
        Ok(Validated {
            settings: Settings {
                join,
                window: windows.config,
                out_of_orderness_ms: windows.out_of_orderness_ms,
                allowed_lateness_ms: windows.allowed_lateness_ms,
                late_horizon_ms: windows.late_horizon_ms,
                limits,
            },
            kafka: self.kafka.clone(),
            codec: self.codec.clone(),
            clickhouse,
            batch,
            checkpoint_interval,
            snapshot_max_age,
            metrics: self.metrics.clone(),
            detector,
        })
    }
}

#[cfg(test)]
mod tests;
