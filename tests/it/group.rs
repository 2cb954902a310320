//! Group membership faults against real Kafka: a member of the consumer group that splits
//! partition pairs (subscribed to one topic only) stops the job at assignment, before it
//! folds or writes anything; once it is gone the same input gives the oracle's rows.

use crate::common::check::check;
use crate::common::harness::{all_visible, events, setup, wait_exit, Opts};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_splits_partition_pairs_stops_the_job_before_it_counts() {
    let s = setup("unpaired", Opts::default()).await;
    let evs = events(12_000, 51);
    let landed = s.produce(&evs).await;

    // Another member of the pipeline's group (group_id is the test's id), subscribed to the
    // survey topic only: range assignment then gives the pipeline contacts partitions whose
    // survey partitions went to this member.
    let stop = Arc::new(AtomicBool::new(false));
    let (brokers, group, topic) = (s.brokers.clone(), s.db.clone(), s.topics.0.clone());
    let flag = stop.clone();
    let rogue = std::thread::spawn(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "6000")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap_or_else(|e| panic!("{e}"));
        c.subscribe(&[&topic]).unwrap_or_else(|e| panic!("{e}"));
        while !flag.load(Ordering::Relaxed) {
            let _ = c.poll(Duration::from_millis(100));
        }
        c.unsubscribe();
        // Dropping the consumer leaves the group.
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("pipeline.log");
    let started = Instant::now();
    let code = wait_exit(
        s.pipeline(&["run", "--until-end"], Some(&log)),
        Duration::from_secs(120),
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_ne!(code, 0, "must not run on half pairs: {text}");
    assert!(
        text.contains("without the same partition of the other topic"),
        "{text}"
    );
    eprintln!("refused after {:?}", started.elapsed());
    let rows = crate::common::count(
        &s.ch,
        &format!("SELECT count() FROM {}.window_aggregates", s.db),
    )
    .await;
    assert_eq!(rows, 0, "nothing was folded or written");

    stop.store(true, Ordering::Relaxed);
    rogue
        .join()
        .unwrap_or_else(|_| panic!("rogue consumer thread"));
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// Static membership (`kafka.group_instance_id`, here from CXP_GROUP_INSTANCE_ID as a pod
/// would set it): three instances, each stopped and started again in turn within the
/// session timeout. No restart may rebalance the group: the other two instances are never
/// assigned anything after their first assignment, and the result stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_static_members_moves_no_partition() {
    use crate::common::harness::{assignments, signal};
    let s = setup(
        "static",
        Opts {
            checkpoint_interval: "2s",
            ..Opts::default()
        },
    )
    .await;
    let evs = events(12_000, 53);
    let third = evs.len() / 3;
    let mut landed = s.produce(&evs[..third]).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let start = |name: &str, n: usize| {
        let log = dir.path().join(format!("{name}-{n}.log"));
        let child = s.pipeline_env(
            &["run"],
            Some(&log),
            &[
                ("CXP_GROUP_INSTANCE_ID", name),
                (
                    "RUST_LOG",
                    "info,cx_pipeline::internal_events::delivery=debug",
                ),
            ],
        );
        (child, log)
    };
    let names = ["a", "b", "c"];
    let mut members: Vec<_> = names.iter().map(|n| start(n, 0)).collect();
    let settle = Instant::now();
    while members.iter().any(|(_, log)| assignments(log) == 0) {
        assert!(
            settle.elapsed() < Duration::from_secs(120),
            "every member assigned"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await; // any join-time rebalance is over
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    // Claims in each member's current log once it settled; a rebalance adds to them.
    let mut claims: Vec<usize> = members.iter().map(|(_, log)| assignments(log)).collect();
    let mut restarts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let part = &evs[third + i * third / 3..third + (i + 1) * third / 3];
        landed.extend(s.produce(part).await);
        let (child, old_log) = members.remove(i);
        let others_before: Vec<u64> = members.iter().map(|(_, l)| log_bytes(l).0).collect();
        signal(&child, "-TERM");
        assert_eq!(wait_exit(child, Duration::from_secs(60)).await, 0);
        let stop_text = std::fs::read_to_string(&old_log).unwrap_or_default();
        let stopped = last_written(&stop_text);
        let again = start(name, 1);
        let t = Instant::now();
        while assignments(&again.1) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{name} got its partitions back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        restarts.push(t.elapsed());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let others_after: Vec<u64> = members.iter().map(|(_, l)| log_bytes(l).0).collect();
        let claimed = log_bytes(&again.1).0;
        eprintln!(
            "restart of {name}: back in {:?}; its stop wrote {stopped} bytes of checkpoints, its \
             claims read and wrote back {claimed} bytes of state; the others' claimed state \
             bytes before and after: {others_before:?} -> {others_after:?}",
            restarts.last().unwrap_or(&Duration::ZERO)
        );
        assert_eq!(
            others_before, others_after,
            "no other member restored state"
        );
        members.insert(i, again);
        claims[i] = assignments(&members[i].1);
        let now: Vec<usize> = members.iter().map(|(_, log)| assignments(log)).collect();
        assert_eq!(now, claims, "restarting {name} rebalanced nobody else");
    }
    landed.extend(s.produce(&evs[2 * third..]).await);
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    let now: Vec<usize> = members.iter().map(|(_, log)| assignments(log)).collect();
    assert_eq!(
        now, claims,
        "no rebalance while the restarted members consumed"
    );
    for (child, _) in members {
        signal(&child, "-TERM");
        assert_eq!(wait_exit(child, Duration::from_secs(60)).await, 0);
    }
    eprintln!("static members: each restart got its partitions back in {restarts:?}");
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// (state bytes claimed, claims) in a member's log so far: the `partition assigned` events.
fn log_bytes(log: &std::path::Path) -> (u64, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("partition assigned"))
        .collect();
    (
        lines.iter().map(|l| field(l, "state_bytes")).sum(),
        lines.len(),
    )
}

/// The bytes of the `checkpoints written` events after a stop was asked for.
fn last_written(text: &str) -> u64 {
    text.lines()
        .skip_while(|l| !l.contains("shutdown requested"))
        .filter(|l| l.contains("checkpoints written"))
        .map(|l| field(l, "bytes"))
        .sum()
}

/// A `name=value` number of a log line, 0 when absent.
fn field(line: &str, name: &str) -> u64 {
    crate::common::harness::log_number(line, name).unwrap_or(0)
}
