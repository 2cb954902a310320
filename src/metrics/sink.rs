//! The ClickHouse sink's series, registered on whichever registry serves them: the
//! pipeline's and the detector's each have their own.

use super::{counter, register, single_gauge};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct SinkMetrics {
    pub rows_written: IntCounterVec,
    pub insert_seconds: HistogramVec,
    pub insert_errors: IntCounterVec,
    /// 0 while ClickHouse statements fail and are being retried; /health reports degraded.
    pub clickhouse_up: IntGauge,
}

impl SinkMetrics {
    pub fn new(r: &Registry) -> Self {
        let clickhouse_up = single_gauge(
            r,
            "cx_clickhouse_up",
            "0 while ClickHouse inserts fail and are retried (consumption is held back)",
        );
        clickhouse_up.set(1);
        SinkMetrics {
            rows_written: counter(
                r,
                "cx_rows_written_total",
                "Rows acknowledged by ClickHouse",
                &["table"],
            ),
            insert_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "cx_clickhouse_insert_seconds",
                        "ClickHouse insert latency per table",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                    &["table"],
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ),
            insert_errors: counter(
                r,
                "cx_clickhouse_errors_total",
                "Failed ClickHouse operations",
                &["table", "kind"],
            ),
            clickhouse_up,
        }
    }

    /// Why /health answers 503, if it does.
    pub fn degraded(&self) -> Option<&'static str> {
        (self.clickhouse_up.get() == 0)
            .then_some("degraded: ClickHouse inserts failing, retrying; consumption held back\n")
    }
}
