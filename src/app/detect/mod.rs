//! `cx-pipeline detect`: the detector as a service. ClickHouse is the one place that holds
//! every partition's share of every window, so the detector reads complete hours from there
//! (one instance per deployment), steps [`Detector`] through them in data time, and delivers
//! what it says to ClickHouse, Kafka and Alertmanager.
//!
//! Restarts: the detector is a function of the hourly data, so a restart replays the last
//! `baseline + gap + 7` days and delivers only events after the hour recorded in
//! `nps_detector_progress`. An alert recorded as firing that the replay no longer produces
//! (late corrections changed history) is resolved explicitly.

pub mod backtest;
mod deliver;
mod pass;
mod store;

use crate::config::Validated;
use crate::detect::Detector;
use crate::metrics::{server, DetectorMetrics};
use crate::shutdown::Shutdown;
use crate::sink::{ClickHouseSink, SinkError};
pub use deliver::ALERT_NAME;
use deliver::{AlertTopic, Alertmanager};
use std::sync::Arc;

/// Why the detector service could not start, or why a `--once` pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A setting this command needs is missing or unusable; the message names the key.
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("alert topic producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Most undelivered Alertmanager or Kafka messages kept for the next pass.
const MAX_PENDING: usize = 10_000;

struct Targets {
    am: Option<Alertmanager>,
    topic: Option<AlertTopic>,
    pending_am: Vec<serde_json::Value>,
    pending_topic: Vec<crate::detect::AlertEvent>,
    /// The last Alertmanager alert sent per open incident.
    sent: std::collections::HashMap<String, serde_json::Value>,
    /// Partitions whose complete hours lag the data clock (a flag on new alerts).
    lagging: usize,
}

struct Running {
    det: Detector,
    next: i64,
    delivered: i64,
    reconciled: bool,
}

/// The configured groupings and nestings as the detector's hierarchy; which container each
/// nested value belongs to is for the caller to fill in from its data.
fn hierarchy(v: &Validated) -> Result<crate::detect::Hierarchy, ServiceError> {
    let groupings: Vec<String> = v
        .settings
        .window
        .groupings
        .iter()
        .map(|g| g.name.clone())
        .collect();
    crate::detect::Hierarchy::new(&groupings, &v.detector.nesting)
        .map_err(|e| ServiceError::Setting(format!("detector.nesting: {e}")))
}

fn now() -> i64 {
    i64::from(crate::sink::clickhouse::now_s())
}

/// Runs passes every `detector.poll_interval` until `stop` (or one pass with `once`).
pub async fn run(v: Validated, once: bool, stop: Shutdown) -> Result<(), ServiceError> {
    if v.clickhouse.url.is_empty() {
        return Err(ServiceError::Setting(
            "clickhouse.url must be set: the detector reads the window partials from ClickHouse"
                .into(),
        ));
    }
    if !v.settings.window.sizes_ms().contains(&3_600_000) {
        return Err(ServiceError::Setting(
            "window.sizes must include \"1h\": the detector works on hourly windows".into(),
        ));
    }
    let ds = &v.detector;
    let metrics = Arc::new(DetectorMetrics::new());
    if !ds.metrics_listen.is_empty() {
        let addr = server::serve(&ds.metrics_listen, metrics.clone())
            .await
            .map_err(|e| {
                ServiceError::Setting(format!(
                    "detector.metrics_listen = {:?}: {e}",
                    ds.metrics_listen
                ))
            })?;
        tracing::info!(%addr, "detector metrics at /metrics");
    }
    let sink = ClickHouseSink::connect(&v.clickhouse, metrics.sink.clone()).await?;
    let mut targets = Targets {
        am: match ds.alertmanager_url.as_str() {
            "" => None,
            url => Some(Alertmanager::new(url)?),
        },
        topic: match ds.alert_topic.as_str() {
            "" => None,
            t => Some(AlertTopic::new(
                v.kafka.client_settings(),
                &v.kafka.brokers,
                t,
            )?),
        },
        pending_am: Vec::new(),
        pending_topic: Vec::new(),
        sent: std::collections::HashMap::new(),
        lagging: 0,
    };
    let mut running: Option<Running> = None;
    loop {
        let ctx = pass::Pass {
            v: &v,
            sink: &sink,
            metrics: &metrics,
        };
        if let Err(e) = ctx.run(&mut targets, &mut running).await {
            tracing::warn!(error = %e, "detector pass failed; replaying from the last delivered hour next pass");
            running = None;
            if once {
                return Err(e);
            }
        }
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(ds.poll_interval) => {}
            _ = stop.wait() => return Ok(()),
        }
    }
}
