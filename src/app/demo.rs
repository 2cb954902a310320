//! `cx-pipeline demo`, the default: the processing core fed in-process by the generator.
//! Writes to ClickHouse only when a URL is configured, and then only to a database of its
//! own (`clickhouse.demo_database`), never next to real results.

use super::{start_metrics, AppError};
use crate::config::Validated;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sink::{ClickHouseSettings, ClickHouseSink, RowWriter};
use crate::source::embedded::{self, DemoOptions};
use std::sync::Arc;
use std::time::Instant;

/// A database that is the pipeline's, or that holds pipeline checkpoints, is refused.
async fn demo_sink(ch: &ClickHouseSettings, metrics: &Metrics) -> Result<ClickHouseSink, AppError> {
    if ch.demo_database == ch.database {
        return Err(AppError::Setting(format!(
            "clickhouse.demo_database = {:?} is the pipeline's database (clickhouse.database); the demo writes synthetic rows and needs a database of its own",
            ch.demo_database
        )));
    }
    // Checked before anything is created or written there.
    let probe = crate::sink::clickhouse::base_client(ch)?;
    let failed = |e: clickhouse::error::Error| {
        AppError::Sink(crate::sink::SinkError::query("SELECT", "checkpoints", e))
    };
    let tables: u64 = probe
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'checkpoints'")
        .bind(&ch.demo_database)
        .fetch_one()
        .await
        .map_err(failed)?;
    let real: u64 = if tables > 0 {
        probe
            .query(&format!(
                "SELECT count() FROM {}.checkpoints",
                ch.demo_database
            ))
            .fetch_one()
            .await
            .map_err(failed)?
    } else {
        0
    };
    if real > 0 {
        return Err(AppError::Setting(format!(
            "clickhouse.demo_database = {:?} holds pipeline checkpoints: it has real results; point the demo at a database of its own",
            ch.demo_database
        )));
    }
    let demo = ch.with_database(&ch.demo_database);
    Ok(ClickHouseSink::connect(&demo, metrics.sink.clone()).await?)
}

pub async fn run(v: Validated, opts: DemoOptions, stop: Shutdown) -> Result<(), AppError> {
    let metrics = Arc::new(Metrics::new(v.metrics.max_label_sets));
    start_metrics(&v.metrics, metrics.clone()).await?;
    let sink = if v.clickhouse.url.is_empty() {
        None
    } else {
        Some(Arc::new(demo_sink(&v.clickhouse, &metrics).await?))
    };
    let writer = RowWriter {
        sink,
        metrics,
        groupings: v.settings.window.groupings.clone(),
    };
    let started = Instant::now();
    let s = embedded::run(v.settings, writer, opts, &stop).await?;
    tracing::info!(
        events = s.processed,
        seconds = started.elapsed().as_secs_f64(),
        "demo finished"
    );
    Ok(())
}
