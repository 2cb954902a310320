//! Prometheus business counters against real Kafka and ClickHouse: they advance only when
//! a checkpoint covers the facts, so a crash and the replay after it count every fact
//! exactly once across processes (the NPS alert reads these series).

use crate::common::check::{check, expected_for};
use crate::common::harness::{all_visible, events, setup, signal, wait_exit, Opts};
use std::time::{Duration, Instant};

/// GET /metrics, which must answer 200: a silent endpoint must not read as zero counts.
async fn scrape(addr: &str) -> String {
    let resp = crate::common::http_get(addr, "/metrics").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{addr}: {resp:.200}");
    resp
}

/// Scrapes once the process answers (it serves before it joins the group).
async fn scrape_when_up(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::common::http_get(addr, "/metrics").await.is_empty() {
        assert!(Instant::now() < deadline, "metrics endpoint never came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scrape(addr).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_counters_count_each_fact_once_across_a_crash() {
    let addr = crate::common::free_local_addr();
    let s = setup(
        "counters",
        Opts {
            checkpoint_interval: "1h",
            metrics_listen: &addr,
            ..Opts::default()
        },
    )
    .await;
    let evs = events(12_000, 41);
    let landed = s.produce(&evs).await;
    let exp = expected_for(&s, &evs, &all_visible(&landed));
    let settled = exp.surveys.values().filter(|(_, fin)| *fin).count() as u64;

    // A writes rows for a while but takes no checkpoint (1h interval), then dies: nothing
    // it wrote may have been counted, because B will replay all of it.
    let a = s.pipeline(&["run"], None);
    scrape_when_up(&addr).await;
    s.wait_contacts(2_000, Duration::from_secs(300)).await;
    let before = scrape(&addr).await;
    signal(&a, "-KILL");
    wait_exit(a, Duration::from_secs(30)).await;
    assert!(s.contacts_written().await >= 2_000, "A wrote rows");
    assert_eq!(
        (
            crate::common::metric_sum(&before, "cx_contacts_total"),
            crate::common::metric_sum(&before, "cx_survey_responses_total")
        ),
        (0, 0),
        "counted before any checkpoint covered the facts"
    );

    // B replays everything, checkpoints every 2 s, and must end at the exact totals.
    let cfg = std::fs::read_to_string(s.config.path()).unwrap_or_default();
    std::fs::write(
        s.config.path(),
        cfg.replace(
            r#"checkpoint_interval = "1h""#,
            r#"checkpoint_interval = "2s""#,
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let b = s.pipeline(&["run"], None);
    s.wait_checkpointed(evs.len() as u64, Duration::from_secs(300))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut contacts, mut responses) = (0, 0);
    while Instant::now() < deadline {
        let text = scrape(&addr).await;
        (contacts, responses) = (
            crate::common::metric_sum(&text, "cx_contacts_total"),
            crate::common::metric_sum(&text, "cx_survey_responses_total"),
        );
        if (contacts, responses) == (exp.contacts as u64, settled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    signal(&b, "-TERM");
    assert_eq!(wait_exit(b, Duration::from_secs(120)).await, 0);
    assert_eq!((contacts, responses), (exp.contacts as u64, settled));
    assert!(settled > 1_000);
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// Incremental checkpoints: a mark names an older base, and a new owner replays the input
/// since that base, facts its predecessor already published included. Those must not be
/// counted again: A publishes up to its last mark and dies; B restores that mark's base,
/// replays, and publishes only what lies beyond; A's and B's counts add up to the oracle's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_an_older_base_counts_nothing_twice() {
    let addr = crate::common::free_local_addr();
    let s = setup(
        "countbase",
        Opts {
            checkpoint_interval: "1s",
            metrics_listen: &addr,
            ..Opts::default()
        },
    )
    .await;
    let evs = events(14_000, 43);
    let (first, tail) = (8_000, 8_400);
    let mut landed = s.produce(&evs[..first]).await;
    let a = s.pipeline(&["run"], None);
    scrape_when_up(&addr).await;
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    // A trickle, far less than half a base: A's checkpoints for it are marks only.
    landed.extend(
        s.produce_paced(&evs[first..tail], Duration::from_secs(3))
            .await,
    );
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_a = scrape(&addr).await;
    signal(&a, "-KILL");
    wait_exit(a, Duration::from_secs(30)).await;
    let replaying = crate::common::count(
        &s.ch,
        &format!(
            "SELECT count() FROM {db}.checkpoints FINAL WHERE (source_partition, version) \
             NOT IN (SELECT source_partition, version FROM {db}.checkpoint_bases)",
            db = s.db
        ),
    )
    .await;
    assert!(replaying > 0, "some latest mark names an older base");

    landed.extend(s.produce(&evs[tail..]).await);
    let b = s.pipeline(&["run"], None);
    scrape_when_up(&addr).await;
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    let exp = expected_for(&s, &evs, &all_visible(&landed));
    let settled = exp.surveys.values().filter(|(_, fin)| *fin).count() as u64;
    let sums = |text: &str| {
        (
            crate::common::metric_sum(text, "cx_contacts_total"),
            crate::common::metric_sum(text, "cx_survey_responses_total"),
        )
    };
    let a_counts = sums(&by_a);
    assert!(
        a_counts.0 > 0 && a_counts.1 > 0,
        "A published: {a_counts:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut total = (0, 0);
    while Instant::now() < deadline {
        let b_counts = sums(&scrape(&addr).await);
        total = (a_counts.0 + b_counts.0, a_counts.1 + b_counts.1);
        if total == (exp.contacts as u64, settled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    signal(&b, "-TERM");
    assert_eq!(wait_exit(b, Duration::from_secs(120)).await, 0);
    assert_eq!(
        total,
        (exp.contacts as u64, settled),
        "A's and B's counts add up"
    );
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}
