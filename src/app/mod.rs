//! The app floor: each command the binary runs, built from the validated config. `main.rs`
//! only parses arguments and calls into here; nothing below this floor imports it.
//!
//! # Layout
//! - [`run`]: the Kafka job (`cx-pipeline run`).
//! - [`demo`]: the embedded default, no external services (`cx-pipeline demo`).
//! - [`generate`]: seeded events to Kafka (`cx-pipeline generate`).
//! - [`detect`]: the NPS-drop detector as a service (`cx-pipeline detect`).
//! - [`simulate`]: the detector's simulation harness (`cx-pipeline simulate-detector`).
//! - [`signals`]: SIGINT/SIGTERM to the one [`Shutdown`](crate::shutdown::Shutdown).

pub mod demo;
pub mod detect;
pub mod generate;
pub mod run;
pub mod signals;
pub mod simulate;

use crate::codec::SchemaError;
use crate::config::{CodecConfig, MetricsConfig};
use crate::metrics::{server, Exposition};
use crate::source::registry::{RegisterError, Registry};
use crate::tls::TlsError;
use std::sync::Arc;

/// Why a command failed; each names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting this command needs is missing or unusable; the message names the key.
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    Schemas(#[from] SchemaError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error(transparent)]
    Job(#[from] crate::source::kafka::JobError),
    #[error(transparent)]
    Demo(#[from] crate::source::embedded::DemoError),
    #[error(transparent)]
    Detector(#[from] detect::ServiceError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error("{what}: {source}")]
    Kafka {
        what: &'static str,
        source: rdkafka::error::KafkaError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Serves /metrics and /health at `metrics.listen`, unless it is empty.
async fn start_metrics<E: Exposition>(m: &MetricsConfig, metrics: Arc<E>) -> Result<(), AppError> {
    if m.listen.is_empty() {
        return Ok(());
    }
    let addr = server::serve(&m.listen, metrics)
        .await
        .map_err(|e| AppError::Setting(format!("metrics.listen = {:?}: {e}", m.listen)))?;
    tracing::info!(%addr, "serving /metrics");
    Ok(())
}

/// The configured schema registry client, if a URL is set.
fn registry(c: &CodecConfig) -> Result<Option<Registry>, AppError> {
    let Some(url) = c.schema_registry_url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let r = Registry::new(
        url,
        c.schema_registry_user.as_deref(),
        c.schema_registry_password.as_ref(),
    );
    Ok(Some(match c.schema_registry_ca_file.as_deref() {
        Some(ca) => r.with_ca_file(ca)?,
        None => r,
    }))
}
