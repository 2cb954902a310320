//! ClickHouse statements: failures (retried or not) and acknowledged inserts. Emitted into
//! the sink's series on whichever registry serves them (pipeline or detector).

use super::InternalEvent;
use crate::metrics::SinkMetrics;

/// A ClickHouse statement (an insert, or a checkpoint read) failed.
pub struct ClickHouseFailed<'a> {
    pub op: &'static str,
    pub table: &'static str,
    pub attempt: u32,
    pub retryable: bool,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent<SinkMetrics> for ClickHouseFailed<'_> {
    fn emit(self, m: &SinkMetrics) {
        let kind = if self.retryable {
            "retryable"
        } else {
            "permanent"
        };
        m.insert_errors.with_label_values(&[self.table, kind]).inc();
        if self.retryable {
            m.clickhouse_up.set(0);
            tracing::warn!(op = self.op, table = self.table, attempt = self.attempt, error = %self.error, "ClickHouse statement failed; retrying");
        } else {
            tracing::error!(op = self.op, table = self.table, attempt = self.attempt, error = %self.error, "ClickHouse statement failed permanently");
        }
    }
}

/// A ClickHouse insert was acknowledged.
pub struct InsertCompleted {
    pub table: &'static str,
    pub rows: usize,
    pub seconds: f64,
}

impl InternalEvent<SinkMetrics> for InsertCompleted {
    fn emit(self, m: &SinkMetrics) {
        m.clickhouse_up.set(1);
        m.insert_seconds
            .with_label_values(&[self.table])
            .observe(self.seconds);
        m.rows_written
            .with_label_values(&[self.table])
            .inc_by(self.rows as u64);
    }
}
