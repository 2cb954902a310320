//! ClickHouse sink. At startup: detect the server version, pick compression and schema
//! validation it supports, run the idempotent DDL in `sql/`, and prove with a probe row that
//! an acknowledged insert is really stored (ClickHouse 18.x acknowledges LZ4 inserts from
//! this client and stores nothing). Inserts retry transient failures with backoff (for as long
//! as they last, each attempt bounded by `clickhouse.timeout`); a
//! permanent failure stops the pipeline before offsets are committed, so nothing is lost.

use super::rows::{CheckpointRow, InteractionRow, ProbeRow, SurveyRow, WindowRow};
use crate::config::{ClickHouseConfig, Compression};
use crate::metrics::Metrics;
use ::clickhouse::{Client, Row};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

const DDL: [&str; 6] = [
    include_str!("sql/001_database.sql"),
    include_str!("sql/002_survey_facts.sql"),
    include_str!("sql/003_interaction_facts.sql"),
    include_str!("sql/004_window_aggregates.sql"),
    include_str!("sql/005_checkpoints.sql"),
    include_str!("sql/006_insert_probe.sql"),
];

/// Oldest server the row formats and DDL were verified against.
const MIN_VERSION: (u32, u32) = (18, 16);

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("ClickHouse {op} on {table} failed after {attempts} attempt(s): {source}")]
    Insert {
        op: &'static str,
        table: &'static str,
        attempts: u32,
        #[source]
        source: ::clickhouse::error::Error,
    },
    #[error("ClickHouse server {version} is older than the supported {}.{}", MIN_VERSION.0, MIN_VERSION.1)]
    TooOld { version: String },
    #[error("ClickHouse server {version} acknowledged a {compression} insert but stored nothing; set clickhouse.compression = \"none\"")]
    SilentLoss {
        version: String,
        compression: &'static str,
    },
    #[error("cannot read ClickHouse version: {0}")]
    Version(String),
    #[error("the insert task stopped: {0}")]
    Task(String),
}

impl SinkError {
    /// Network trouble and server overload pass; schema and type errors do not.
    fn retryable(e: &::clickhouse::error::Error) -> bool {
        use ::clickhouse::error::Error as E;
        match e {
            E::Network(_) | E::TimedOut => true,
            E::BadResponse(msg) => {
                // Codes: 159 timeout, 202 too many queries, 203 no free connection,
                // 241 memory limit, 252 too many parts, 394 query cancelled.
                [
                    "Code: 159",
                    "Code: 202",
                    "Code: 203",
                    "Code: 241",
                    "Code: 252",
                    "Code: 394",
                ]
                .iter()
                .any(|c| msg.contains(c))
            }
            _ => false,
        }
    }
}

/// Error mapper for statements that are not retried.
fn once(
    op: &'static str,
    table: &'static str,
) -> impl FnOnce(::clickhouse::error::Error) -> SinkError {
    move |source| SinkError::Insert {
        op,
        table,
        attempts: 1,
        source,
    }
}

pub struct ClickHouseSink {
    client: Client,
    db: String,
    pub version: String,
    metrics: Arc<Metrics>,
    /// One insert attempt's limit (`clickhouse.timeout`).
    timeout: Duration,
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.').map(|x| x.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

impl ClickHouseSink {
    /// Connects, adapts to the server version, creates tables and self-tests inserts.
    pub async fn connect(cfg: &ClickHouseConfig, metrics: Arc<Metrics>) -> Result<Self, SinkError> {
        let base = Client::default()
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(cfg.password.expose())
            .with_compression(::clickhouse::Compression::None)
            .with_validation(false);
        let version: String = base
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(|e| SinkError::Version(format!("{}: {e}", cfg.url)))?;
        let parsed = parse_version(&version).ok_or_else(|| SinkError::Version(version.clone()))?;
        if parsed < MIN_VERSION {
            return Err(SinkError::TooOld { version });
        }
        let modern = parsed >= (24, 1);
        let compression = match cfg.compression {
            Compression::Auto if parsed >= (20, 1) => Compression::Lz4,
            Compression::Auto => Compression::None,
            c => c,
        };
        let client = base
            .with_compression(match compression {
                Compression::Lz4 => ::clickhouse::Compression::Lz4,
                _ => ::clickhouse::Compression::None,
            })
            .with_validation(modern);
        let sink = ClickHouseSink {
            client,
            db: cfg.database.clone(),
            version: version.clone(),
            metrics,
            timeout: humantime::parse_duration(&cfg.timeout).unwrap_or(Duration::from_secs(30)),
        };
        for ddl in DDL {
            sink.client
                .query(&ddl.replace("{db}", &sink.db))
                .execute()
                .await
                .map_err(once("DDL", "schema"))?;
        }
        // Inserts name the bare table: the crate quotes `db.table` as one identifier.
        let sink = ClickHouseSink {
            client: sink.client.clone().with_database(&sink.db),
            ..sink
        };
        sink.probe(if compression == Compression::Lz4 {
            "lz4"
        } else {
            "none"
        })
        .await?;
        tracing::info!(%version, ?compression, validation = modern, "ClickHouse ready");
        Ok(sink)
    }

    async fn probe(&self, compression: &'static str) -> Result<(), SinkError> {
        let token = format!("{}-{}", std::process::id(), now_s());
        self.insert(
            "insert_probe",
            &[ProbeRow {
                token: token.clone(),
                at: now_s(),
            }],
        )
        .await?;
        let n: u64 = self
            .client
            .query(&format!(
                "SELECT count() FROM {}.insert_probe WHERE token = ?",
                self.db
            ))
            .bind(&token)
            .fetch_one()
            .await
            .map_err(once("probe read", "insert_probe"))?;
        if n != 1 {
            return Err(SinkError::SilentLoss {
                version: self.version.clone(),
                compression,
            });
        }
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &str {
        &self.db
    }

    /// One INSERT of all rows, retried as a whole on transient errors (network, overload,
    /// an attempt past `clickhouse.timeout`) for as long as they last, backing off up to
    /// 10 s: an outage holds the job back (the caller waits, so nothing more is consumed)
    /// instead of stopping it, and `cx_clickhouse_up` / `/health` say so. Anything else
    /// (schema, types) fails at once. Duplicates from a retry after a lost acknowledgement
    /// are harmless: every table replaces by key.
    pub async fn insert<T>(&self, table: &'static str, rows: &[T]) -> Result<(), SinkError>
    where
        T: Row + Serialize + for<'a> Row<Value<'a> = T>,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let started = Instant::now();
            let res = tokio::time::timeout(self.timeout, async {
                let mut ins = self.client.insert::<T>(table).await?;
                for r in rows {
                    ins.write(r).await?;
                }
                ins.end().await
            })
            .await
            .unwrap_or(Err(::clickhouse::error::Error::TimedOut));
            match res {
                Ok(()) => {
                    self.metrics.clickhouse_up.set(1);
                    self.metrics
                        .insert_seconds
                        .with_label_values(&[table])
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics
                        .rows_written
                        .with_label_values(&[table])
                        .inc_by(rows.len() as u64);
                    return Ok(());
                }
                Err(e) => {
                    let retry = SinkError::retryable(&e);
                    self.metrics
                        .insert_errors
                        .with_label_values(&[table, if retry { "retryable" } else { "permanent" }])
                        .inc();
                    if !retry {
                        return Err(SinkError::Insert {
                            op: "INSERT",
                            table,
                            attempts: attempt,
                            source: e,
                        });
                    }
                    self.metrics.clickhouse_up.set(0);
                    tracing::warn!(table, attempt, error = %e, "ClickHouse insert failed; retrying");
                    let backoff = 200u64.saturating_mul(1 << attempt.min(6)).min(10_000);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
            }
        }
    }

    pub async fn write_batch(
        &self,
        surveys: &[SurveyRow],
        contacts: &[InteractionRow],
        windows: &[WindowRow],
    ) -> Result<(), SinkError> {
        self.insert("survey_facts", surveys).await?;
        self.insert("interaction_facts", contacts).await?;
        self.insert("window_aggregates", windows).await
    }

    /// Latest checkpoint per partition of a consumer group.
    pub async fn load_checkpoints(
        &self,
        group: &str,
        partitions: &[i32],
    ) -> Result<Vec<CheckpointRow>, SinkError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let list = partitions
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.client
            .query(&format!(
                "SELECT ?fields FROM {}.checkpoints FINAL WHERE consumer_group = ? AND source_partition IN ({list})",
                self.db
            ))
            .bind(group)
            .fetch_all::<CheckpointRow>()
            .await
            .map_err(once("SELECT", "checkpoints"))
    }
}

pub fn now_s() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_parse_and_order() {
        assert_eq!(super::parse_version("18.16.1"), Some((18, 16)));
        assert_eq!(super::parse_version("24.8.4.13"), Some((24, 8)));
        assert!(super::parse_version("x").is_none());
        assert!(super::parse_version("18.14.2").unwrap_or((0, 0)) < super::MIN_VERSION);
    }
}
