//! The NPS-drop detector end to end, against real services: Apache Kafka, the registry and
//! ClickHouse (via the pipeline) and a real Alertmanager (Debian's `prometheus-alertmanager`,
//! started by this test). A generated stream with an injected drop in one team goes through
//! the pipeline into ClickHouse; `cx-pipeline detect --once` must page for that team (and no
//! other team), with the NPS, answer count and change start the independent oracle gives for
//! the same hours; the alert must be readable from Alertmanager's API and the alert topic.
//! After the team recovers, a second run (a restart: history replayed, nothing re-sent) must
//! resolve it in ClickHouse and in Alertmanager.

use crate::common::harness::{self, setup, wait_exit, Opts};
use crate::common::oracle::{self, Landed};
use cx_pipeline::codec::WireFormat;
use cx_pipeline::generator::{generate, GenConfig, TeamDrop};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TEAM: &str = "billing";
const HOUR_MS: i64 = 3_600_000;

pub(crate) struct Alertmanager {
    child: Child,
    pub(crate) addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Alertmanager with the shipped routing (deploy/alertmanager/alertmanager.yml; its
/// webhooks point nowhere, which only makes notifications fail in its log).
pub(crate) async fn alertmanager() -> Alertmanager {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/alertmanager/alertmanager.yml");
    let addr = crate::common::free_local_addr();
    let log = std::fs::File::create(dir.path().join("am.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("prometheus-alertmanager (scripts/install-deps.sh installs it): {e}")
        });
    let am = Alertmanager {
        child,
        addr,
        _dir: dir,
    };
    for _ in 0..100 {
        if crate::common::http_get(&am.addr, "/-/ready")
            .await
            .starts_with("HTTP/1.1 200")
        {
            return am;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Alertmanager did not become ready at {}", am.addr);
}

/// A short-history detector section for these small test worlds (baseline 3 days ending a
/// day back, 2 needed; 0.1 false alerts a week, as their few segments share the budget),
/// with `extra` settings, put in place of the config's `[metrics]` header.
pub(crate) fn detector_section(s: &harness::Setup, extra: &str) {
    s.edit_config(
        "[metrics]",
        &format!(
            "[detector]\nbudget_per_week = 0.1\nbaseline = \"3d\"\nbaseline_gap = \"1d\"\nmin_history = \"2d\"\n{extra}[metrics]"
        ),
    );
}

/// Alertmanager's active alerts (GET /api/v2/alerts), as JSON.
pub(crate) async fn am_alerts(am: &Alertmanager) -> Vec<serde_json::Value> {
    let resp = crate::common::http_get(&am.addr, "/api/v2/alerts").await;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    // Chunked transfer: the JSON array sits between the chunk sizes.
    let start = body.find('[').unwrap_or(0);
    let end = body.rfind(']').map_or(body.len(), |i| i + 1);
    serde_json::from_str(&body[start..end]).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[derive(clickhouse::Row, serde::Deserialize, Debug)]
pub(crate) struct AlertRow {
    pub(crate) alert_id: String,
    pub(crate) state: String,
    pub(crate) grouping: String,
    pub(crate) segment: String,
    change_start: u32,
    pub(crate) event_time: u32,
    nps: f64,
    n: u64,
    pub(crate) payload: String,
}

pub(crate) async fn alert_rows(s: &harness::Setup) -> Vec<AlertRow> {
    let client = clickhouse::Client::default()
        .with_url(&s.ch)
        .with_compression(clickhouse::Compression::None)
        .with_validation(false);
    client
        .query(&format!(
            "SELECT alert_id, state, grouping, segment, toUInt32(change_start), toUInt32(event_time), nps, n, payload \
             FROM {}.nps_alerts FINAL ORDER BY event_time, alert_id, state",
            s.db
        ))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The oracle's NPS answers of one team over `[from_s, to_s)`, from 1h window rows:
/// (promoters - detractors, answers).
fn oracle_team(exp: &oracle::Expected, from_s: u32, to_s: u32) -> (i64, u64) {
    let (mut score, mut n) = (0i64, 0u64);
    for ((size, start, grouping, dims, _), sums) in &exp.rows {
        if *size == 3600 && grouping == "team" && dims[2] == TEAM && (from_s..to_s).contains(start)
        {
            // Sums follow the window row's counts: responses, nps_n, promoters, passives, detractors, ...
            n += sums[1];
            score += sums[2] as i64 - sums[4] as i64;
        }
    }
    (score, n)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_in_one_team_pages_through_alertmanager_and_resolves_after_recovery() {
    let s = setup("detector", Opts::default()).await;
    let am = alertmanager().await;
    let alert_topic = format!("{}-alerts", s.db);
    crate::common::create_topics(&s.brokers, &[(&alert_topic, 1)]).await;
    // Four days of history (the test's baseline: 3 days ending 1 day back, 2 needed; a
    // budget of 0.1 false alerts a week, as this small world's few segments share it), then
    // half the billing team's ticket surveys turn into detractors for 12 hours, then a day
    // of recovery.
    let start_ms = (harness::now_ms() - 6 * 24 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let drop_from = start_ms + 4 * 24 * HOUR_MS;
    let drop_to = drop_from + 12 * HOUR_MS;
    let cfg = GenConfig {
        seed: 77,
        count: 170_000,
        start_ms,
        ticket_gap_ms: 9_000,
        malformed_share: 0.0,
        late_share: 0.0,
        drop: Some(TeamDrop {
            team: TEAM.into(),
            from_ms: drop_from,
            to_ms: drop_to,
            share: 0.5,
            deeper: None,
        }),
        ..GenConfig::default()
    };
    let evs = generate(&cfg, WireFormat::Confluent);
    let last_ms = evs.iter().map(|g| g.arrival_ms).max().unwrap_or(0);
    assert!(
        last_ms > drop_to + 30 * HOUR_MS,
        "the stream must reach well past the drop"
    );
    let split = evs.partition_point(|g| g.arrival_ms < drop_from + 8 * HOUR_MS);
    detector_section(
        &s,
        &format!(
            "alertmanager_url = \"http://{}\"\nalert_topic = \"{alert_topic}\"\nmetrics_listen = \"\"\n",
            am.addr
        ),
    );

    // Phase 1: history and the first 8 hours of the drop.
    let landed1 = s.produce(&evs[..split]).await;
    s.run_to_end().await;
    let detect = |log: &str| {
        let path = std::env::temp_dir().join(format!("{}-{log}.log", s.db));
        (s.pipeline(&["detect", "--once"], Some(&path)), path)
    };
    let (child, log1) = detect("detect1");
    let code = wait_exit(child, Duration::from_secs(300)).await;
    let text = std::fs::read_to_string(&log1).unwrap_or_default();
    assert_eq!(code, 0, "detect --once: {text}");
    let rows = alert_rows(&s).await;
    let fired: Vec<&AlertRow> = rows.iter().filter(|r| r.state == "firing").collect();
    let team_alerts: Vec<&&AlertRow> = fired.iter().filter(|r| r.grouping == "team").collect();
    assert_eq!(
        team_alerts
            .iter()
            .map(|r| r.segment.as_str())
            .collect::<Vec<_>>(),
        vec![format!("team={TEAM}")],
        "exactly the dropped team pages among teams: {fired:?}"
    );
    let a = team_alerts[0];
    // It fires within the drop, after it started, and dates the change near the true start.
    let fired_at_ms = i64::from(a.event_time) * 1000;
    assert!(
        fired_at_ms > drop_from && fired_at_ms <= drop_from + 8 * HOUR_MS,
        "{a:?}"
    );
    let cs_ms = i64::from(a.change_start) * 1000;
    assert!(
        (cs_ms - drop_from).abs() <= 3 * HOUR_MS,
        "change start {cs_ms} vs {drop_from}"
    );
    // The NPS and count it reports are exactly what the oracle gives for the same hours.
    let views1: Vec<Landed<'_>> = evs[..split]
        .iter()
        .zip(&landed1)
        .map(|(g, &(partition, offset))| Landed {
            partition,
            offset,
            g,
        })
        .collect();
    let exp = oracle::expected(&views1, &harness::params_for(s.late_horizon_h));
    let (score, n) = oracle_team(&exp, a.change_start, a.event_time);
    assert_eq!(a.n, n, "answers since the change start");
    assert!(
        (a.nps - 100.0 * score as f64 / n as f64).abs() < 1e-9,
        "NPS {} vs oracle",
        a.nps
    );
    let payload: serde_json::Value =
        serde_json::from_str(&a.payload).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        payload["baseline_nps"].as_f64().unwrap_or(0.0) - a.nps > 20.0,
        "{payload}"
    );
    let ids = payload["detractor_response_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!ids.is_empty() && ids.len() <= 5, "{payload}");
    assert!(
        !a.payload.contains("comment"),
        "no comment text in an alert"
    );

    // Alertmanager has it, active, with the payload in its annotations.
    let active = am_alerts(&am).await;
    let ours: Vec<&serde_json::Value> = active
        .iter()
        .filter(|x| x["labels"]["cx_segment"] == format!("team={TEAM}"))
        .collect();
    assert_eq!(ours.len(), 1, "{active:?}");
    assert_eq!(ours[0]["labels"]["alertname"], "CxNpsSegmentDrop");
    assert_eq!(ours[0]["status"]["state"], "active");
    assert_eq!(ours[0]["annotations"]["alert_id"], a.alert_id.as_str());
    // A drop of more than twice a team's δ pages, and the shipped routes send it to on-call.
    assert_eq!(ours[0]["labels"]["severity"], "page", "{}", ours[0]);
    assert_eq!(
        ours[0]["labels"]["cx_incident"], payload["incident_id"],
        "{}",
        ours[0]
    );
    assert_eq!(ours[0]["receivers"][0]["name"], "cx-oncall", "{}", ours[0]);
    let link = ours[0]["annotations"]["dashboard"].as_str().unwrap_or("");
    assert!(
        link.contains("/d/cx-support?") && link.contains(&format!("var-team={TEAM}")),
        "{link}"
    );
    let from_ms: i64 = link
        .split("from=")
        .nth(1)
        .and_then(|x| x.split('&').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    assert!(
        from_ms <= cs_ms && from_ms >= cs_ms - 4 * 24 * HOUR_MS,
        "{link}"
    );
    assert_eq!(ours[0]["annotations"]["runbook_url"], "docs/RUNBOOK.md");
    let id0 = ids[0].as_str().unwrap_or_default();
    assert!(ours[0]["annotations"]["description"]
        .as_str()
        .unwrap_or("")
        .contains(id0));
    // And the alert topic, keyed by segment.
    let records = crate::common::read_topic(&s.brokers, &alert_topic);
    assert!(
        records
            .iter()
            .any(|(k, v)| k == &format!("team|team={TEAM}") && v.contains("\"state\":\"firing\"")),
        "{records:?}"
    );

    // Phase 2: the rest of the drop and a day of recovery; the detector restarted as the
    // service it is in production (polling every second, serving /metrics), stopped by
    // SIGTERM once the resolution is recorded.
    let metrics = crate::common::free_local_addr();
    s.edit_config(
        "metrics_listen = \"\"\n[metrics]",
        &format!("metrics_listen = \"{metrics}\"\npoll_interval = \"1s\"\n[metrics]"),
    );
    s.produce(&evs[split..]).await;
    s.run_to_end().await;
    let log2 = std::env::temp_dir().join(format!("{}-detect2.log", s.db));
    let child = s.pipeline(&["detect"], Some(&log2));
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let scraped = loop {
        let resolved = alert_rows(&s)
            .await
            .iter()
            .any(|r| r.alert_id == a.alert_id && r.state == "resolved");
        if resolved {
            // A couple more passes, so the gauges reflect the resolution.
            tokio::time::sleep(Duration::from_secs(3)).await;
            break crate::common::http_get(&metrics, "/metrics").await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no resolution within 300 s: {}",
            std::fs::read_to_string(&log2).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    harness::signal(&child, "-TERM");
    let code = wait_exit(child, Duration::from_secs(60)).await;
    let text = std::fs::read_to_string(&log2).unwrap_or_default();
    assert_eq!(code, 0, "detect stops cleanly on SIGTERM: {text}");
    assert!(!text.contains("detector pass failed"), "{text}");
    let gauge = |name: &str| {
        scraped
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert!(
        gauge("cx_nps_detector_last_evaluation_timestamp_seconds").is_some_and(|t| t > 1.0e9),
        "{scraped}"
    );
    let evaluated = gauge("cx_nps_detector_evaluated_hour_timestamp_seconds").unwrap_or(0.0);
    assert!(
        evaluated * 1000.0 > (drop_to + 20 * HOUR_MS) as f64,
        "evaluated through the recovery: {evaluated}"
    );
    assert!(
        !scraped.lines().any(|l| l.starts_with("cx_nps_alerts_firing{grouping=\"team\"}") && !l.ends_with(" 0")),
        "no team alert firing after the recovery: {scraped}"
    );
    // One notification (the incident opened as a page), none open after the recovery.
    assert_eq!(
        gauge("cx_nps_notifications_total{severity=\"page\"}"),
        None,
        "the restarted detector delivered no new notification: {scraped}"
    );
    assert_eq!(
        gauge("cx_nps_incidents_open{severity=\"page\"}"),
        Some(0.0),
        "{scraped}"
    );
    assert!(
        !scraped.contains("cx_pipeline_up") && !scraped.contains("cx_consumed_total"),
        "the detector serves its own registry, not the pipeline's: {scraped}"
    );
    let rows = alert_rows(&s).await;
    let states: Vec<&str> = rows
        .iter()
        .filter(|r| r.alert_id == a.alert_id)
        .map(|r| r.state.as_str())
        .collect();
    assert!(
        states.first() == Some(&"firing")
            && states.last() == Some(&"resolved")
            && states[1..states.len() - 1].iter().all(|s| *s == "updated"),
        "fired, maybe updated in place, resolved: {rows:?}"
    );
    let resolved = rows
        .iter()
        .find(|r| r.alert_id == a.alert_id && r.state == "resolved");
    let resolved_ms = resolved.map_or(0, |r| i64::from(r.event_time) * 1000);
    assert!(
        resolved_ms >= drop_to,
        "resolved only after the drop ended: {resolved_ms} < {drop_to}"
    );
    // Nothing was delivered twice: one firing row per alert id, and the topic has one firing.
    let records = crate::common::read_topic(&s.brokers, &alert_topic);
    let firing_msgs = records
        .iter()
        .filter(|(k, v)| k == &format!("team|team={TEAM}") && v.contains("\"state\":\"firing\""))
        .count();
    assert_eq!(firing_msgs, 1, "{records:?}");
    let active = am_alerts(&am).await;
    assert!(
        !active
            .iter()
            .any(|x| x["labels"]["cx_segment"] == format!("team={TEAM}")),
        "resolved in Alertmanager: {active:?}"
    );
}
