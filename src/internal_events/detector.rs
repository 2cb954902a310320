//! The detector service: alert events delivered, deliveries that failed (retried next
//! pass), and the gauges of each completed pass.

use super::InternalEvent;
use crate::detect::AlertEvent;
use crate::metrics::DetectorMetrics;

/// An alert event was recorded (and handed to the delivery targets).
pub struct AlertDelivered<'a> {
    pub event: &'a AlertEvent,
}

impl InternalEvent<DetectorMetrics> for AlertDelivered<'_> {
    fn emit(self, m: &DetectorMetrics) {
        let e = self.event;
        tracing::info!(
            alert_id = %e.alert_id, state = e.state.as_str(), segment = %e.segment,
            incident = %e.incident_id, severity = e.severity.as_str(), reason = %e.reason,
            notify = e.notify, nps = e.nps, baseline = e.baseline_nps, n = e.n, "NPS alert"
        );
        m.events.with_label_values(&[e.state.as_str()]).inc();
    }
}

/// A delivery target did not take the pass's messages; they are kept for the next pass.
pub struct AlertDeliveryFailed<'a> {
    /// `alertmanager` or `kafka`.
    pub target: &'static str,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent<DetectorMetrics> for AlertDeliveryFailed<'_> {
    fn emit(self, m: &DetectorMetrics) {
        m.delivery_failures.with_label_values(&[self.target]).inc();
        tracing::warn!(target_name = self.target, error = %self.error, "alert delivery failed; re-sending next pass");
    }
}

/// A pass completed: what is firing and watched per grouping, and how far data time got.
pub struct DetectorPassed<'a> {
    /// Grouping name per active alert ("" = overall).
    pub firing: &'a [&'a str],
    /// Watched segments per grouping ("" = overall).
    pub watched: &'a [(String, usize)],
    /// Receiver class of each open incident.
    pub incidents: &'a [&'static str],
    /// The first hour not yet evaluated (hours since the epoch).
    pub clock_hour: i64,
    pub now_s: i64,
}

impl InternalEvent<DetectorMetrics> for DetectorPassed<'_> {
    fn emit(self, m: &DetectorMetrics) {
        let name = |g: &str| {
            if g.is_empty() {
                "overall".to_string()
            } else {
                g.to_string()
            }
        };
        m.firing.reset();
        for g in self.firing {
            m.firing.with_label_values(&[&name(g)]).inc();
        }
        for (g, n) in self.watched {
            m.watched
                .with_label_values(&[&name(g)])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        m.incidents.reset();
        for route in ["page", "ticket"] {
            m.incidents.with_label_values(&[route]).set(0);
        }
        for r in self.incidents {
            m.incidents.with_label_values(&[r]).inc();
        }
        m.evaluated_hour.set(self.clock_hour.saturating_mul(3600));
        m.last_evaluation.set(self.now_s);
    }
}
