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
