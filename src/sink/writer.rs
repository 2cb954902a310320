//! Turns a batch of outputs into ClickHouse rows and writes them; shared by the Kafka job
//! and the embedded demo so both write exactly the same rows.

use super::clickhouse::now_s;
use super::rows::{InteractionRow, SurveyRow, WindowRow};
use super::{ClickHouseSink, SinkError};
use crate::metrics::Metrics;
use crate::pipeline::partition::Outputs;
use crate::window::Grouping;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Writes batches of outputs as rows; no sink (the demo without ClickHouse) writes nothing.
pub struct RowWriter {
    pub sink: Option<Arc<ClickHouseSink>>,
    pub metrics: Arc<Metrics>,
    pub groupings: Vec<Grouping>,
}

impl RowWriter {
    /// Writes the batch. Returns once ClickHouse acknowledged. Business counters are the
    /// caller's: the Kafka job adds them when a checkpoint covers the facts. `epochs`: the
    /// writer's ownership epoch per partition (empty for the demo: 0).
    pub async fn write(&self, out: &Outputs, epochs: &BTreeMap<i32, u32>) -> Result<(), SinkError> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let now = now_s();
        let surveys: Vec<SurveyRow> = out.surveys.iter().map(SurveyRow::from).collect();
        let contacts: Vec<InteractionRow> = out.contacts.iter().map(InteractionRow::from).collect();
        let windows: Vec<WindowRow> = out
            .windows
            .iter()
            .map(|(p, u)| {
                let epoch = epochs.get(p).copied().unwrap_or(0);
                WindowRow::new(*p, epoch, u, &self.groupings, now)
            })
            .collect();
        sink.write_batch(&surveys, &contacts, &windows).await
    }
}
