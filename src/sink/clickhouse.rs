//! ClickHouse sink. At startup: detect the server version, pick compression and schema
//! validation it supports, run the idempotent DDL in `sql/`, and prove with a probe row that
//! an acknowledged insert is really stored (ClickHouse 18.x acknowledges LZ4 inserts from
//! this client and stores nothing). Inserts retry transient failures with backoff (for as long
//! as they last, each attempt bounded by `clickhouse.timeout`); a
//! permanent failure stops the pipeline before offsets are committed, so nothing is lost.

use super::rows::{InteractionRow, ProbeRow, SurveyRow, WindowRow};
use super::settings::{ClickHouseSettings, Compression};
use crate::internal_events::{ClickHouseFailed, InsertCompleted, InternalEvent};
use crate::metrics::SinkMetrics;
use crate::tls::TlsError;
use ::clickhouse::{Client, Row};
use serde::Serialize;
use std::time::{Duration, Instant};
use thiserror::Error;

const DDL: [&str; 11] = [
    include_str!("sql/001_database.sql"),
    include_str!("sql/002_survey_facts.sql"),
    include_str!("sql/003_interaction_facts.sql"),
    include_str!("sql/004_window_aggregates.sql"),
    include_str!("sql/005_checkpoints.sql"),
    include_str!("sql/006_insert_probe.sql"),
    include_str!("sql/007_nps_alerts.sql"),
    include_str!("sql/008_nps_digest.sql"),
    include_str!("sql/009_detector_progress.sql"),
    include_str!("sql/010_checkpoint_bases.sql"),
    include_str!("sql/011_checkpoint_claims.sql"),
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
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the insert task stopped: {0}")]
    Task(String),
}

impl SinkError {
    /// A statement that is not retried failed.
    pub fn query(
        op: &'static str,
        table: &'static str,
        source: ::clickhouse::error::Error,
    ) -> Self {
        SinkError::Insert {
            op,
            table,
            attempts: 1,
            source,
        }
    }

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

pub struct ClickHouseSink {
    client: Client,
    db: String,
    pub version: String,
    metrics: SinkMetrics,
    /// One insert attempt's limit (`clickhouse.timeout`).
    timeout: Duration,
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.').map(|x| x.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

impl ClickHouseSink {
    /// Connects, adapts to the server version, creates tables and self-tests inserts.
    pub async fn connect(
        cfg: &ClickHouseSettings,
        metrics: SinkMetrics,
    ) -> Result<Self, SinkError> {
        let base = base_client(cfg)?;
        let version: String = base
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(|e| {
                SinkError::Version(format!(
                    "{}: {}",
                    crate::secret::redact_url(&cfg.url),
                    chain(&e)
                ))
            })?;
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
            timeout: cfg.timeout,
        };
        super::migrate::before_ddl(&sink).await?;
        for ddl in DDL {
            sink.client
                .query(&ddl.replace("{db}", &sink.db))
                .execute()
                .await
                .map_err(|e| SinkError::query("DDL", "schema", e))?;
        }
        super::migrate::after_ddl(&sink).await?;
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
            .map_err(|e| SinkError::query("probe read", "insert_probe", e))?;
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

    /// One INSERT of all rows, retried as a whole on transient errors (see
    /// [`ClickHouseSink::retrying`]). Duplicates from a retry after a lost acknowledgement
    /// are harmless: every table replaces by key.
    pub async fn insert<T>(&self, table: &'static str, rows: &[T]) -> Result<(), SinkError>
    where
        T: Row + Serialize + for<'a> Row<Value<'a> = T>,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.retrying("INSERT", table, || async {
            let mut ins = self.client.insert::<T>(table).await?;
            for r in rows {
                ins.write(r).await?;
            }
            ins.end().await
        })
        .await?;
        InsertCompleted {
            table,
            rows: rows.len(),
            seconds: started.elapsed().as_secs_f64(),
        }
        .emit(&self.metrics);
        Ok(())
    }

    /// Runs one statement, retried on transient errors (network, overload, an attempt past
    /// `clickhouse.timeout`) for as long as they last, backing off up to 10 s: an outage
    /// holds the job back (the caller waits, so nothing more is consumed) instead of
    /// stopping it, and `cx_clickhouse_up` / `/health` say so. Anything else (schema,
    /// types) fails at once.
    pub async fn retrying<T, F, Fut>(
        &self,
        op: &'static str,
        table: &'static str,
        attempt_once: F,
    ) -> Result<T, SinkError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ::clickhouse::error::Error>>,
    {
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let res = tokio::time::timeout(self.timeout, attempt_once())
                .await
                .unwrap_or(Err(::clickhouse::error::Error::TimedOut));
            let e = match res {
                Ok(v) => {
                    self.metrics.clickhouse_up.set(1);
                    return Ok(v);
                }
                Err(e) => e,
            };
            let retry = SinkError::retryable(&e);
            ClickHouseFailed {
                op,
                table,
                attempt,
                retryable: retry,
                error: &e,
            }
            .emit(&self.metrics);
            if !retry {
                return Err(SinkError::Insert {
                    op,
                    table,
                    attempts: attempt,
                    source: e,
                });
            }
            let backoff = 200u64.saturating_mul(1 << attempt.min(6)).min(10_000);
            tokio::time::sleep(Duration::from_millis(backoff)).await;
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
}

/// An error with its causes ("client error (Connect): ...: certificate verify failed"), so
/// a TLS or connection problem is named instead of hidden behind the outermost message.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let next = s.to_string();
        if !out.contains(&next) {
            out.push_str(": ");
            out.push_str(&next);
        }
        cur = s.source();
    }
    out
}

/// The configured server, user and password, uncompressed and unvalidated: what works on
/// every supported version before the version is known.
pub fn base_client(cfg: &ClickHouseSettings) -> Result<Client, TlsError> {
    Ok(http_client(cfg)?
        .with_url(cfg.url.as_str())
        .with_user(&cfg.user)
        .with_password(cfg.password.expose())
        .with_compression(::clickhouse::Compression::None)
        .with_validation(false))
}

/// A client for `http://` and `https://` URLs, trusting `clickhouse.ca_file` besides the
/// system's roots. Idle connections are dropped before the server's 3 s keep-alive ends.
pub fn http_client(cfg: &ClickHouseSettings) -> Result<Client, TlsError> {
    let conn = crate::tls::https_connector(cfg.ca_file.as_deref(), "clickhouse.ca_file")?;
    Ok(Client::with_http_client(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(2))
            .build(conn),
    ))
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
