//! A ClickHouse outage mid-stream, against real Kafka and a real ClickHouse server reached
//! through a TCP proxy in this test that drops every connection for 60 s (to the pipeline
//! the same as the server going away and coming back; the shared test server itself keeps
//! running for the other tests). The job must stay up with bounded memory, report degraded
//! health, and end exactly equal to the oracle.

use crate::common::check::check;
use crate::common::harness::{all_visible, events, setup, signal, wait_exit, Opts};
use crate::common::proxy::{Mode, Proxy};
use std::time::{Duration, Instant};

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clickhouse_outage_holds_the_job_back_and_loses_nothing() {
    let metrics = crate::common::free_local_addr();
    let s = setup(
        "ch_outage",
        Opts {
            checkpoint_interval: "2s",
            metrics_listen: &metrics,
            ..Opts::default()
        },
    )
    .await;
    let upstream = s.ch.trim_start_matches("http://").to_string();
    let proxy = Proxy::start(upstream).await;
    let cfg = std::fs::read_to_string(s.config.path()).unwrap_or_default();
    let line = format!("url = \"{}\"", s.ch);
    assert!(cfg.contains(&line));
    std::fs::write(
        s.config.path(),
        cfg.replace(&line, &format!("url = \"http://127.0.0.1:{}\"", proxy.port)),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let evs = events(30_000, 71);
    let first = evs.len() / 3;
    let mut landed = s.produce(&evs[..first]).await;
    let mut child = s.pipeline(&["run"], None);
    s.wait_contacts(2_000, Duration::from_secs(300)).await;

    proxy.set(Mode::Down);
    landed.extend(s.produce(&evs[first..]).await);
    let (t0, mut max_rss, mut degraded) = (Instant::now(), 0, false);
    while t0.elapsed() < Duration::from_secs(60) {
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the job exited during the outage"
        );
        max_rss = max_rss.max(rss_kb(child.id()));
        degraded |= crate::common::http_get(&metrics, "/health")
            .await
            .starts_with("HTTP/1.1 503");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("outage: 60 s, max RSS {max_rss} kB, health degraded: {degraded}");
    assert!(degraded, "/health reported the outage");
    assert!(
        max_rss > 0 && max_rss < 1_500_000,
        "RSS bounded: {max_rss} kB"
    );

    proxy.set(Mode::Up);
    s.wait_checkpointed(evs.len() as u64, Duration::from_secs(300))
        .await;
    assert!(crate::common::http_get(&metrics, "/health")
        .await
        .starts_with("HTTP/1.1 200"));
    signal(&child, "-TERM");
    assert_eq!(wait_exit(child, Duration::from_secs(120)).await, 0);
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}
