//! The backtest against real services: a generated week goes through Kafka, the registry and
//! the pipeline into ClickHouse; `cx-pipeline backtest` replays the detector over the
//! recorded `survey_facts` with a 40-point drop injected into one team for a day. It must
//! find that drop within hours, find nothing for that team without the injection, and
//! leave ClickHouse as it was.

use crate::common::harness::{self, setup, wait_exit, Opts};
use cx_pipeline::codec::WireFormat;
use cx_pipeline::generator::{generate, GenConfig};
use std::time::Duration;

const HOUR_MS: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_backtest_finds_a_drop_injected_into_the_recorded_answers_and_changes_nothing() {
    let s = setup("backtest", Opts::default()).await;
    let start_ms = (harness::now_ms() - 6 * 24 * HOUR_MS) / HOUR_MS * HOUR_MS;
    let cfg = GenConfig {
        seed: 80,
        count: 150_000,
        start_ms,
        ticket_gap_ms: 9_000,
        malformed_share: 0.0,
        late_share: 0.0,
        ..GenConfig::default()
    };
    let evs = generate(&cfg, WireFormat::Confluent);
    s.produce(&evs).await;
    s.run_to_end().await;
    crate::detector::detector_section(&s, "");
    let facts = |sql: &'static str| {
        let url = s.ch.clone();
        let db = s.db.clone();
        async move { crate::common::count(&url, &sql.replace("{db}", &db)).await }
    };
    let fingerprint =
        "SELECT toUInt64(count() * 1000 + sum(ifNull(nps_score, 0))) FROM {db}.survey_facts";
    let before = facts(fingerprint).await;
    let t = |ms: i64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64))
            .to_string()
    };
    let inject_at = start_ms + 4 * 24 * HOUR_MS;
    let backtest = |name: &str, inject: Option<String>| {
        let out = std::env::temp_dir().join(format!("{}-{name}.md", s.db));
        let log = std::env::temp_dir().join(format!("{}-{name}.log", s.db));
        let from = t(start_ms);
        let to = t(start_ms + 6 * 24 * HOUR_MS);
        let mut args = vec!["backtest", "--from", &from, "--to", &to];
        let inj;
        if let Some(i) = &inject {
            inj = i.clone();
            args.extend(["--inject", inj.as_str()]);
        }
        let o = out.to_string_lossy().to_string();
        args.extend(["--out", o.as_str()]);
        (s.pipeline(&args, Some(&log)), out, log)
    };
    let (child, out, log) = backtest(
        "inject",
        Some(format!("team=billing:40:24h@{}", t(inject_at))),
    );
    let code = wait_exit(child, Duration::from_secs(300)).await;
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let row = report
        .lines()
        .find(|l| l.starts_with("| team=billing −40 points"))
        .unwrap_or_else(|| panic!("{report}"));
    let after: i64 = row
        .split('|')
        .nth(4)
        .and_then(|x| x.trim().strip_suffix(" h"))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("the injected drop is found: {row}"));
    assert!(
        (1..=12).contains(&after),
        "found {after} h after its start: {row}"
    );

    let (child, out, log) = backtest("plain", None);
    let code = wait_exit(child, Duration::from_secs(300)).await;
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let plain = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        !plain.lines().any(|l| l.contains("| team=billing |")),
        "without the injection the team is quiet: {plain}"
    );
    assert_eq!(facts(fingerprint).await, before, "ClickHouse is only read");
}
