//! Alerts that follow the drop, against real services: Apache Kafka, the registry and
//! ClickHouse (via the pipeline) and a real Alertmanager running the shipped routing
//! (deploy/alertmanager/alertmanager.yml). The billing team's NPS first drops by about
//! 10 points (a team below 2δ: a ticket, routed to the business-hours receiver); the on-call
//! person silences the incident in Alertmanager; then the drop deepens. The detector must
//! update the same alert in place (an `updated` row, reason `escalated`, severity `page`),
//! send the incident to Alertmanager as a page routed to on-call, and Alertmanager must keep
//! it silenced: the silence on `cx_incident` holds through the escalation.

use crate::common::harness::{self, setup, wait_exit, Opts};
use crate::detector::{alert_rows, alertmanager, am_alerts, detector_section, Alertmanager};
use cx_pipeline::codec::WireFormat;
use cx_pipeline::generator::{generate, GenConfig, TeamDrop};
use std::time::Duration;

const TEAM: &str = "billing";
const HOUR_MS: i64 = 3_600_000;

/// Silences `cx_incident = id` for a day; returns the silence id.
async fn silence(am: &Alertmanager, id: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let now = std::time::SystemTime::now();
    let body = serde_json::json!({
        "matchers": [{"name": "cx_incident", "value": id, "isRegex": false, "isEqual": true}],
        "startsAt": humantime::format_rfc3339_seconds(now).to_string(),
        "endsAt": humantime::format_rfc3339_seconds(now + Duration::from_secs(86_400)).to_string(),
        "createdBy": "on-call",
        "comment": "acknowledged: looking at billing",
    })
    .to_string();
    let mut sock = tokio::net::TcpStream::connect(&am.addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = format!(
        "POST /api/v2/silences HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut resp = String::new();
    let _ = sock.read_to_string(&mut resp).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let json = &resp[resp.find('{').unwrap_or(0)..resp.rfind('}').map_or(resp.len(), |i| i + 1)];
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {resp}"));
    v["silenceID"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deepening_drop_escalates_in_place_to_on_call_and_a_silence_holds() {
    let s = setup("escalation", Opts::default()).await;
    let am = alertmanager().await;
    let start_ms = (harness::now_ms() - 7 * 24 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let drop_from = start_ms + 4 * 24 * HOUR_MS;
    let deeper = drop_from + 48 * HOUR_MS;
    let drop_to = deeper + 24 * HOUR_MS;
    let cfg = GenConfig {
        seed: 78,
        count: 210_000,
        start_ms,
        ticket_gap_ms: 9_000,
        malformed_share: 0.0,
        late_share: 0.0,
        drop: Some(TeamDrop {
            team: TEAM.into(),
            from_ms: drop_from,
            to_ms: drop_to,
            share: 0.12,
            deeper: Some((deeper, 0.6)),
        }),
        ..GenConfig::default()
    };
    let evs = generate(&cfg, WireFormat::Confluent);
    let last_ms = evs.iter().map(|g| g.arrival_ms).max().unwrap_or(0);
    assert!(
        last_ms > deeper + 16 * HOUR_MS,
        "the stream reaches past the deepening"
    );
    let split = evs.partition_point(|g| g.arrival_ms < deeper);
    detector_section(
        &s,
        &format!(
            "alertmanager_url = \"http://{}\"\nalert_topic = \"\"\nmetrics_listen = \"\"\n",
            am.addr
        ),
    );
    let detect = |log: &str| {
        let path = std::env::temp_dir().join(format!("{}-{log}.log", s.db));
        (s.pipeline(&["detect", "--once"], Some(&path)), path)
    };

    // Phase 1: history and 48 hours of the mild drop.
    s.produce(&evs[..split]).await;
    s.run_to_end().await;
    let (child, log) = detect("detect1");
    let code = wait_exit(child, Duration::from_secs(300)).await;
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let rows = alert_rows(&s).await;
    let first = rows
        .iter()
        .find(|r| r.segment == format!("team={TEAM}") && r.state == "firing")
        .unwrap_or_else(|| panic!("the mild drop fires: {rows:?}"));
    let payload: serde_json::Value =
        serde_json::from_str(&first.payload).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(payload["severity"], "ticket", "a team below 2δ: {payload}");
    let incident = payload["incident_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ours = |alerts: &[serde_json::Value]| -> Vec<serde_json::Value> {
        alerts
            .iter()
            .filter(|a| a["labels"]["cx_incident"] == incident.as_str())
            .cloned()
            .collect()
    };
    let active = ours(&am_alerts(&am).await);
    assert_eq!(
        active.len(),
        1,
        "one Alertmanager alert for the incident: {active:?}"
    );
    assert_eq!(active[0]["labels"]["severity"], "ticket");
    assert_eq!(
        active[0]["receivers"][0]["name"], "cx-business-hours",
        "{}",
        active[0]
    );
    let silence_id = silence(&am, &incident).await;

    // Phase 2: the drop deepens; the detector restarts (replays, re-sends).
    s.produce(&evs[split..]).await;
    s.run_to_end().await;
    let (child, log) = detect("detect2");
    let code = wait_exit(child, Duration::from_secs(300)).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{text}");
    let rows = alert_rows(&s).await;
    let updated: Vec<serde_json::Value> = rows
        .iter()
        .filter(|r| r.alert_id == first.alert_id && r.state == "updated")
        .map(|r| serde_json::from_str(&r.payload).unwrap_or_default())
        .collect();
    assert!(
        updated
            .iter()
            .any(|p| p["severity"] == "page" || p["severity"] == "critical"),
        "the same alert escalated in place: {rows:?}"
    );
    let escalated = rows
        .iter()
        .filter(|r| r.alert_id == first.alert_id && r.state == "updated")
        .map(|r| i64::from(r.event_time) * 1000)
        .min()
        .unwrap_or(0);
    assert!(
        escalated > deeper && escalated <= deeper + 12 * HOUR_MS,
        "escalated within 12 h of the deepening: {}",
        (escalated - deeper) / HOUR_MS
    );
    assert!(
        !rows.iter().any(|r| r.segment == format!("team={TEAM}")
            && r.state == "firing"
            && r.alert_id != first.alert_id),
        "no second alert for the team: {rows:?}"
    );
    let now = ours(&am_alerts(&am).await);
    let page = now
        .iter()
        .find(|a| a["labels"]["severity"] == "page")
        .cloned()
        .unwrap_or_else(|| panic!("the incident pages now: {now:?}"));
    assert_eq!(page["receivers"][0]["name"], "cx-oncall", "{page}");
    assert_eq!(
        page["status"]["state"], "suppressed",
        "the silence holds: {page}"
    );
    assert!(
        page["status"]["silencedBy"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == silence_id.as_str())),
        "{page}"
    );
    assert_eq!(page["annotations"]["alert_id"], first.alert_id.as_str());
}

/// Shadow mode: the detector evaluates and records what it would have sent (rows marked
/// `shadow`), and Alertmanager and the alert topic hear nothing: how a deployment measures
/// its own false-page rate before turning paging on.
#[tokio::test(flavor = "multi_thread")]
async fn shadow_mode_records_alerts_and_sends_nothing() {
    let s = setup("shadow", Opts::default()).await;
    let am = alertmanager().await;
    let alert_topic = format!("{}-alerts", s.db);
    crate::common::create_topics(&s.brokers, &[(&alert_topic, 1)]).await;
    let start_ms = (harness::now_ms() - 6 * 24 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let drop_from = start_ms + 4 * 24 * HOUR_MS;
    let cfg = GenConfig {
        seed: 79,
        count: 150_000,
        start_ms,
        ticket_gap_ms: 9_000,
        malformed_share: 0.0,
        late_share: 0.0,
        drop: Some(TeamDrop {
            team: TEAM.into(),
            from_ms: drop_from,
            to_ms: drop_from + 24 * HOUR_MS,
            share: 0.5,
            deeper: None,
        }),
        ..GenConfig::default()
    };
    let evs = generate(&cfg, WireFormat::Confluent);
    let until = evs.partition_point(|g| g.arrival_ms < drop_from + 12 * HOUR_MS);
    detector_section(
        &s,
        &format!(
            "mode = \"shadow\"\nalertmanager_url = \"http://{}\"\nalert_topic = \"{alert_topic}\"\nmetrics_listen = \"\"\n",
            am.addr
        ),
    );
    s.produce(&evs[..until]).await;
    s.run_to_end().await;
    let path = std::env::temp_dir().join(format!("{}-shadow.log", s.db));
    let code = wait_exit(
        s.pipeline(&["detect", "--once"], Some(&path)),
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(&path).unwrap_or_default()
    );
    let rows = alert_rows(&s).await;
    let ours: Vec<serde_json::Value> = rows
        .iter()
        .filter(|r| r.segment == format!("team={TEAM}") && r.state == "firing")
        .map(|r| serde_json::from_str(&r.payload).unwrap_or_default())
        .collect();
    assert_eq!(ours.len(), 1, "recorded: {rows:?}");
    assert_eq!(ours[0]["shadow"], true, "{}", ours[0]);
    assert!(
        am_alerts(&am).await.is_empty(),
        "Alertmanager hears nothing"
    );
    assert!(
        crate::common::read_topic(&s.brokers, &alert_topic).is_empty(),
        "nothing on the alert topic"
    );
}
