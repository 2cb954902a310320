//! Memory bounded whatever the input, against real Kafka and ClickHouse: one partition's
//! contacts are silent for 30 days of event time while its surveys flow (one every 5
//! minutes, 60 regions), so its contact floor never moves and no window may close on time.
//! With `ingest.max_open_rows_per_partition = 1000` the job closes the oldest windows early:
//! its open-row and state-byte gauges stay under the cap, it counts the early closes, and
//! once the contacts' backlog arrives and both streams move on, every survey and contact is
//! in ClickHouse exactly once (summed across revisions, as the README says to query),
//! checked against counts of the produced events.

use crate::common::harness::{setup, signal, wait_exit, Opts};
use cx_pipeline::generator::GenEvent;
use cx_pipeline::model::{Event, Interaction, Stream, Survey};
use std::time::Duration;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;
const CAP: u64 = 1_000;
const KEY: &str = "quiet-customer";

fn survey(id: String, t: i64, region: String) -> GenEvent {
    GenEvent {
        stream: Stream::Survey,
        key: KEY.into(),
        event: Event::Survey(Survey {
            response_id: id,
            customer_id: KEY.into(),
            ticket_id: None,
            submitted_at_ms: t,
            survey_channel: "EMAIL".into(),
            nps_score: Some(((t / MIN) % 11) as u8),
            csat_score: Some(4),
            comment: None,
            region: Some(region),
            product: None,
            customer_tier: None,
        }),
        malformed: None,
        arrival_ms: t,
    }
}

fn contact(id: String, t: i64) -> GenEvent {
    GenEvent {
        stream: Stream::Interaction,
        key: KEY.into(),
        event: Event::Interaction(Interaction {
            interaction_id: id.clone(),
            ticket_id: format!("t-{id}"),
            customer_id: KEY.into(),
            agent_id: "agent-1".into(),
            team: "team-a".into(),
            channel: "PHONE".into(),
            bucket: "POST_SALES".into(),
            category: "refunds".into(),
            product: None,
            started_at_ms: t - MIN,
            ended_at_ms: t,
            talk_ms: 60_000,
            hold_ms: 1_000,
            wrap_ms: 5_000,
            resolved: true,
        }),
        malformed: None,
        arrival_ms: t,
    }
}

async fn scrape(addr: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = crate::common::http_get(addr, "/metrics").await;
        if text.starts_with("HTTP/1.1 200") {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics never came up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn gauge(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_silent_contacts_stays_under_the_cap_and_counts_exactly() {
    let addr = crate::common::free_local_addr();
    let s = setup(
        "quiet",
        Opts {
            checkpoint_interval: "1s",
            metrics_listen: &addr,
            ..Opts::default()
        },
    )
    .await;
    std::fs::write(
        s.config.path(),
        std::fs::read_to_string(s.config.path()).unwrap_or_default()
            + &format!("[ingest]\nmax_open_rows_per_partition = {CAP}\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let now = crate::common::harness::now_ms();
    let t0 = now - 40 * DAY - (now % DAY);
    let mut month = vec![contact("first".into(), t0)];
    for m in 0..30 * 24 * 12 {
        let t = t0 + m * 5 * MIN;
        month.push(survey(format!("r{m}"), t, format!("region-{}", m % 60)));
    }
    let mut rest = Vec::new();
    for h in 0..30 * 24 {
        rest.push(contact(format!("b{h}"), t0 + h * 60 * MIN + 30_000));
    }
    for m in 0..60 {
        let t = t0 + 30 * DAY + m * MIN;
        rest.push(survey(format!("n{m}"), t, "region-0".into()));
        rest.push(contact(format!("n{m}"), t));
    }
    let surveys = (month.iter().chain(&rest))
        .filter(|g| g.stream == Stream::Survey)
        .count() as u64;
    let contacts = (month.len() + rest.len()) as u64 - surveys;

    let job = s.pipeline(&["run"], None);
    let landed = s.produce(&month).await.len() as u64;
    s.wait_checkpointed(landed, Duration::from_secs(300)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = scrape(&addr).await;
    let open = gauge(&text, "cx_state_entries", "kind=\"open_windows\"");
    let bytes = gauge(&text, "cx_state_bytes", "kind=\"open_windows\"")
        + gauge(&text, "cx_state_bytes", "kind=\"segments\"");
    let early = gauge(&text, "cx_windows_closed_early_total ", "");
    let checkpoint = crate::common::count(
        &s.ch,
        &format!(
            "SELECT toUInt64(max(length(state))) FROM {}.checkpoints FINAL",
            s.db
        ),
    )
    .await;
    eprintln!(
        "after 30 silent days: {open} open rows, {bytes} window and segment bytes, {early} rows \
         closed early, largest checkpoint {checkpoint} bytes"
    );
    if open > CAP || bytes > CAP * 200 || early == 0 {
        signal(&job, "-KILL"); // not left running past a failed test
    }
    assert!(open <= CAP, "{open} rows open over the cap of {CAP}");
    assert!(bytes <= CAP * 200, "{bytes} bytes of window state");
    assert!(early > 0, "windows closed early, and counted");

    let landed = landed + s.produce(&rest).await.len() as u64;
    s.wait_checkpointed(landed, Duration::from_secs(300)).await;
    signal(&job, "-TERM");
    assert_eq!(wait_exit(job, Duration::from_secs(120)).await, 0);
    let sum = |col: &str| {
        format!(
            "SELECT toUInt64(sum(sign * {col})) FROM {}.window_aggregates FINAL \
             WHERE grouping = '' AND window_size_s = 60",
            s.db
        )
    };
    assert_eq!(
        crate::common::count(&s.ch, &sum("responses")).await,
        surveys
    );
    assert_eq!(
        crate::common::count(&s.ch, &sum("contacts")).await,
        contacts
    );
    let hourly = sum("responses").replace("window_size_s = 60", "window_size_s = 3600");
    assert_eq!(crate::common::count(&s.ch, &hourly).await, surveys);
}
