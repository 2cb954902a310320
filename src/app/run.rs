//! `cx-pipeline run`: the Kafka job. Connects the sink (creating the tables), reads the
//! reader schemas, builds the decoder on the registry, and runs the poll loop until a
//! signal (or the end of the input, with `--until-end`).

use super::{registry, start_metrics, AppError};
use crate::codec::{Decoder, SchemaSource, Schemas};
use crate::config::Validated;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sink::ClickHouseSink;
use crate::source::kafka::KafkaJob;
use crate::source::registry::BlockingRegistry;
use std::sync::Arc;

pub fn run(
    rt: &tokio::runtime::Runtime,
    v: Validated,
    until_end: bool,
    complete: bool,
    stop: &Shutdown,
) -> Result<(), AppError> {
    if v.clickhouse.url.is_empty() {
        return Err(AppError::Setting("clickhouse.url (or CXP_CLICKHOUSE_URL) is required for `run`; try `demo` for a run without services".into()));
    }
    let metrics = Arc::new(Metrics::new(v.metrics.max_label_sets));
    let (sink, schemas) = rt.block_on(async {
        start_metrics(&v.metrics, metrics.clone()).await?;
        let sink = ClickHouseSink::connect(&v.clickhouse, metrics.sink.clone()).await?;
        let schemas = Schemas::from_dir(v.codec.schemas_dir.as_deref())?;
        Ok::<_, AppError>((sink, schemas))
    })?;
    let source = registry(&v.codec)?.map(|registry| {
        Box::new(BlockingRegistry {
            registry,
            runtime: rt.handle().clone(),
        }) as Box<dyn SchemaSource>
    });
    let decoder = Decoder::new(v.codec.format, schemas, source)
        .budget(v.codec.budget())
        .lookups(v.codec.lookups());
    let mut job = KafkaJob {
        settings: v,
        metrics,
        sink: Arc::new(sink),
        decoder,
        runtime: rt.handle().clone(),
        bounded: until_end,
        complete,
    };
    let t = job.run(stop)?;
    tracing::info!(
        consumed = t.consumed,
        dead_lettered = t.dead_lettered,
        late = t.late,
        "pipeline stopped cleanly"
    );
    Ok(())
}
