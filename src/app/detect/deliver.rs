//! Where alert events go besides ClickHouse: Alertmanager's v2 API (every active alert is
//! re-sent each pass with an `endsAt` a few passes ahead, so Alertmanager keeps it until we
//! stop saying so; resolved alerts are sent once with `endsAt` = the resolving hour), a Kafka
//! topic keyed by segment.

use crate::detect::alert::AlertEvent;
use crate::detect::detector::IncidentView;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::time::Duration;

pub const ALERT_NAME: &str = "CxNpsSegmentDrop";

/// Where an alert's links point (`detector.grafana_url`, `detector.runbook_url`).
pub struct Links<'a> {
    pub grafana_url: &'a str,
    pub runbook_url: &'a str,
}

/// The board for the segment, from three days before the drop's start to the alert's hour:
/// the support board filtered to the team for team and agent segments, the executive
/// board (filtered to the region when there is one) otherwise. Empty without a Grafana URL.
pub fn dashboard_link(grafana_url: &str, e: &AlertEvent) -> String {
    if grafana_url.is_empty() {
        return String::new();
    }
    let enc = |v: &str| -> String {
        v.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let (uid, var) = match (e.dims.get("team"), e.dims.get("region")) {
        (Some(t), _) => ("cx-support", format!("&var-team={}", enc(t))),
        (None, Some(r)) => ("cx-executive", format!("&var-region={}", enc(r))),
        (None, None) => ("cx-executive", String::new()),
    };
    format!(
        "{grafana_url}/d/{uid}?orgId=1&from={}&to={}{var}",
        (e.change_start - 3 * 86_400).max(0) * 1000,
        (e.at + 3600) * 1000
    )
}

/// The long text of one alert: NPS against the baseline, the test, where the drop sits.
pub fn description(e: &AlertEvent) -> String {
    let contributors: Vec<String> = e
        .contributors
        .iter()
        .map(|c| format!("{} ({:.1} pts, n={})", c.segment, c.points, c.n))
        .collect();
    let categories: Vec<String> = e
        .detractor_categories
        .iter()
        .map(|c| {
            format!(
                "{} ({:.0}% of detractors vs {:.0}% of answers)",
                c.category,
                100.0 * c.among_detractors,
                100.0 * c.among_all
            )
        })
        .collect();
    let none = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let split = e.mix_split.as_ref().map_or("not available".into(), |m| {
        format!(
            "{:+.1} points from the mix of {} changing, {:+.1} from the same {} scoring differently",
            m.mix, m.by, m.within, m.by
        )
    });
    format!(
        "NPS {:.1} (95% CI {:.1}..{:.1}, n={}) since {} against a baseline of {:.1} (95% CI {:.1}..{:.1}, {} answers): {:+.1} points; drop estimate {:.0} points. \
         CUSUM for a {:.0}-point drop at {:.2} (threshold {:.2}, over-dispersion {:.2}). Mix vs within: {split}. Data flags: {}. Contributors: {}. Over-represented among detractors: {}. Detractor response ids: {}.",
        e.nps, e.nps_low, e.nps_high, e.n, crate::detect::rfc3339(e.change_start), e.baseline_nps, e.baseline_low,
        e.baseline_high, e.baseline_n, e.effect, e.drop, e.delta, e.statistic, e.threshold, e.phi,
        none(&e.data_flags), none(&contributors), none(&categories), none(&e.detractor_response_ids),
    )
}

/// One incident as Alertmanager's v2 API takes it. Its identity (labels) is the incident, the
/// segment that opened it and the receiver class, so an update in place (deeper, more
/// segments, the opening alert resolving first, page → critical) changes annotations only
/// and does not notify again, a silence on `cx_incident` holds
/// for the incident's whole life, and a ticket turning into a page is a new alert routed to
/// on-call.
pub fn am_incident(v: &IncidentView<'_>, ends_at: i64, links: &Links<'_>) -> serde_json::Value {
    let Some(lead) = v.members.first() else {
        return json!({});
    };
    let members: Vec<String> = v
        .members
        .iter()
        .map(|m| {
            format!(
                "{} ({:+.1} pts, {})",
                m.segment,
                m.effect,
                m.severity.as_str()
            )
        })
        .collect();
    let summary = if v.members.len() > 1 {
        format!(
            "{} (+{} related segments)",
            lead.summary(),
            v.members.len() - 1
        )
    } else {
        lead.summary()
    };
    let flags: std::collections::BTreeSet<&str> = v
        .members
        .iter()
        .flat_map(|m| m.data_flags.iter().map(String::as_str))
        .collect();
    json!({
        "labels": {
            "alertname": ALERT_NAME,
            "severity": v.severity.route(),
            "cx_incident": v.id,
            "cx_grouping": if v.grouping.is_empty() { "overall" } else { v.grouping },
            "cx_segment": v.segment,
        },
        "annotations": {
            "summary": summary,
            "description": description(lead),
            "level": v.severity.as_str(),
            "segments": members.join("; "),
            "data_flags": flags.into_iter().collect::<Vec<_>>().join(", "),
            "runbook_url": links.runbook_url,
            "dashboard": dashboard_link(links.grafana_url, lead),
            "alert_id": lead.alert_id,
        },
        "startsAt": crate::detect::rfc3339(v.opened_at),
        "endsAt": crate::detect::rfc3339(ends_at),
    })
}

pub struct Alertmanager {
    base: String,
    /// `base` without any user:password, for messages.
    shown: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Alertmanager {
    pub fn new(url: &str) -> Result<Self, crate::tls::TlsError> {
        let conn = crate::tls::https_connector(None, "detector.alertmanager_url")?;
        let base = url.trim_end_matches('/').to_string();
        let shown = crate::secret::redact_url(&base);
        Ok(Alertmanager {
            base,
            shown,
            client: Client::builder(TokioExecutor::new()).build(conn),
        })
    }

    pub async fn post(&self, alerts: &[serde_json::Value]) -> Result<(), String> {
        if alerts.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(alerts).map_err(|e| e.to_string())?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/api/v2/alerts", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .map_err(|_| format!("no answer from {} within 10 s", self.shown))?
            .map_err(|e| format!("{}: {e}", self.shown))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(300)
                    .collect::<String>()
            })
            .unwrap_or_default();
        Err(format!("{} answered {status}: {text}", self.shown))
    }
}

/// Alert events on a Kafka topic, keyed by `grouping|segment` so one segment's events stay
/// in order on one partition.
pub struct AlertTopic {
    producer: rdkafka::producer::FutureProducer,
    topic: String,
}

impl AlertTopic {
    pub fn new(
        client: std::collections::BTreeMap<String, String>,
        brokers: &str,
        topic: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", brokers);
        for (k, v) in client {
            c.set(k, v);
        }
        let producer = c.create()?;
        Ok(AlertTopic {
            producer,
            topic: topic.to_string(),
        })
    }

    pub async fn send(&self, e: &AlertEvent) -> Result<(), String> {
        let key = format!("{}|{}", e.grouping, e.segment);
        let payload = serde_json::to_vec(e).map_err(|x| x.to_string())?;
        let rec = rdkafka::producer::FutureRecord::to(&self.topic)
            .key(&key)
            .payload(&payload);
        self.producer
            .send(rec, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(err, _)| format!("topic {}: {err}", self.topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{AlertState, Severity};

    fn event(segment: &str, team: Option<&str>, severity: Severity) -> AlertEvent {
        AlertEvent {
            alert_id: format!("id-{segment}"),
            state: AlertState::Firing,
            grouping: if team.is_some() {
                "team".into()
            } else {
                "product".into()
            },
            segment: segment.into(),
            dims: team
                .map(|t| [("team".to_string(), t.to_string())].into())
                .unwrap_or_default(),
            at: 1_796_400_000,
            fired_at: 1_796_400_000,
            change_start: 1_796_392_800,
            nps: 10.0,
            nps_low: 5.0,
            nps_high: 15.0,
            n: 500,
            baseline_nps: 30.0,
            baseline_low: 29.0,
            baseline_high: 31.0,
            baseline_n: 20_000,
            effect: -20.0,
            delta: 10.0,
            statistic: 9.0,
            threshold: 8.0,
            contributors: Vec::new(),
            detractor_categories: Vec::new(),
            detractor_response_ids: Vec::new(),
            incident_id: "inc1".into(),
            severity,
            reason: String::new(),
            notify: true,
            drop: 20.0,
            phi: 1.2,
            mix_split: None,
            volume_ratio: 1.0,
            data_flags: vec!["unattributed_up".into()],
            shadow: false,
        }
    }

    #[test]
    fn an_incident_keeps_its_labels_when_its_opening_alert_resolves_and_routes_by_receiver() {
        let links = Links {
            grafana_url: "http://grafana:3000",
            runbook_url: "https://wiki/runbook",
        };
        let team = event("team=a b", Some("a b"), Severity::Page);
        let product = event("product=x", None, Severity::Critical);
        fn view(members: Vec<&AlertEvent>, severity: Severity) -> IncidentView<'_> {
            IncidentView {
                id: "inc1",
                opened_at: 1_796_400_000,
                grouping: "team",
                segment: "team=a b",
                severity,
                members,
            }
        }
        let both = am_incident(&view(vec![&team, &product], Severity::Critical), 0, &links);
        let later = am_incident(&view(vec![&product], Severity::Critical), 0, &links);
        assert_eq!(
            both["labels"], later["labels"],
            "same alert in Alertmanager"
        );
        assert_eq!(
            both["labels"]["severity"], "page",
            "critical pages like a page"
        );
        assert_eq!(both["annotations"]["level"], "critical");
        assert_eq!(both["labels"]["cx_segment"], "team=a b");
        let ticket = am_incident(&view(vec![&team], Severity::Ticket), 0, &links);
        assert_eq!(ticket["labels"]["severity"], "ticket");
        let link = both["annotations"]["dashboard"].as_str().unwrap_or("");
        assert_eq!(
            link,
            "http://grafana:3000/d/cx-support?orgId=1&from=1796133600000&to=1796403600000&var-team=a%20b"
        );
        assert_eq!(both["annotations"]["runbook_url"], "https://wiki/runbook");
        assert_eq!(both["annotations"]["data_flags"], "unattributed_up");
        assert_eq!(dashboard_link("", &team), "");
    }

    #[test]
    fn credentials_in_the_alertmanager_url_never_reach_a_message() {
        let am = Alertmanager::new("http://oncall:s3cret@127.0.0.1:1/")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(am.shown, "http://***@127.0.0.1:1");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = rt.block_on(am.post(&[serde_json::json!({})])).unwrap_err();
        assert!(
            !err.contains("s3cret") && err.contains("127.0.0.1:1"),
            "{err}"
        );
    }
}
