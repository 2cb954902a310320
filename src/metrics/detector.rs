//! The detector service's own registry: its series and the ClickHouse sink's, and none of
//! the pipeline's (a detector's /metrics must not show pipeline series at zero).

use super::{counter, gauge, single_gauge, Exposition, SinkMetrics};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// Low-cardinality: per grouping, per state, per delivery target.
pub struct DetectorMetrics {
    registry: Registry,
    pub sink: SinkMetrics,
    pub firing: IntGaugeVec,
    pub watched: IntGaugeVec,
    pub last_evaluation: IntGauge,
    pub evaluated_hour: IntGauge,
    pub events: IntCounterVec,
    pub delivery_failures: IntCounterVec,
    pub incidents: IntGaugeVec,
    pub notifications: IntCounterVec,
}

impl Default for DetectorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DetectorMetrics {
    pub fn new() -> Self {
        let r = Registry::new();
        DetectorMetrics {
            sink: SinkMetrics::new(&r),
            firing: gauge(
                &r,
                "cx_nps_alerts_firing",
                "NPS-drop alerts active, by grouping",
                &["grouping"],
            ),
            watched: gauge(
                &r,
                "cx_nps_detector_segments",
                "Segments with a baseline, by grouping",
                &["grouping"],
            ),
            last_evaluation: single_gauge(
                &r,
                "cx_nps_detector_last_evaluation_timestamp_seconds",
                "Wall-clock time of the detector's last completed pass",
            ),
            evaluated_hour: single_gauge(
                &r,
                "cx_nps_detector_evaluated_hour_timestamp_seconds",
                "End of the last hour the detector evaluated (data time)",
            ),
            events: counter(
                &r,
                "cx_nps_alert_events_total",
                "Alert events delivered, by state",
                &["state"],
            ),
            delivery_failures: counter(
                &r,
                "cx_nps_alert_delivery_failures_total",
                "Failed deliveries by target (alertmanager, kafka, clickhouse); retried next pass",
                &["target"],
            ),
            incidents: gauge(
                &r,
                "cx_nps_incidents_open",
                "Open NPS incidents, by receiver class (page, ticket)",
                &["severity"],
            ),
            notifications: counter(
                &r,
                "cx_nps_notifications_total",
                "Incidents opened or sent to a receiver they had not reached, by receiver class",
                &["severity"],
            ),
            registry: r,
        }
    }
}

impl Exposition for DetectorMetrics {
    fn render(&self) -> String {
        super::server::render(&self.registry)
    }
    fn degraded(&self) -> Option<&'static str> {
        self.sink.degraded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detector_serves_its_series_and_the_sinks_but_none_of_the_pipelines() {
        let m = DetectorMetrics::new();
        m.firing.with_label_values(&["team"]).set(1);
        let text = m.render();
        assert!(
            text.contains("cx_nps_alerts_firing{grouping=\"team\"} 1"),
            "{text}"
        );
        assert!(text.contains("cx_clickhouse_up 1"), "{text}");
        for pipeline_only in [
            "cx_pipeline_up",
            "cx_consumed_total",
            "cx_checkpoints_total",
        ] {
            assert!(!text.contains(pipeline_only), "{pipeline_only} in {text}");
        }
        assert!(m.degraded().is_none());
        m.sink.clickhouse_up.set(0);
        assert!(m.degraded().is_some());
    }
}
