//! What producers may do, against real Apache Kafka: transactions that abort (never counted,
//! the consumer reads committed data only), and the partitioning a non-Java producer must use
//! to land a customer's events where the real Java client lands them.

use crate::common::check::check;
use crate::common::harness::{events, setup, Opts};
use crate::common::Partitioner;
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_are_never_counted_committed_ones_are() {
    let s = setup("txn", Opts::default()).await;
    let evs = events(40_000, 23);
    // Transactions of 700 events; every third one aborts (about a third of all events,
    // malformed and late ones among them).
    let landed = crate::common::produce_transactional(
        &s.brokers,
        (&s.topics.0, &s.topics.1),
        &evs,
        &s.encoder,
        700,
        3,
    )
    .await;
    let aborted = landed.iter().filter(|l| l.is_none()).count();
    eprintln!(
        "{aborted} of {} events produced in aborted transactions",
        evs.len()
    );
    assert!(
        aborted > evs.len() / 4,
        "the run aborts a real share: {aborted}"
    );
    s.run_to_end().await;
    check(&s, &evs, &landed).await;
}

/// Partition of each key as the real Java client's default partitioner places it.
fn java_partitions(brokers: &str, topic: &str, keys: &[String]) -> HashMap<String, i32> {
    let lib = crate::common::env("CXP_KAFKA_LIB");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/JavaProducer.java");
    let mut child = Command::new("java")
        .args(["-cp", &format!("{lib}/*"), src, brokers, topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("java: {e}"));
    {
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        for k in keys {
            writeln!(stdin, "{k}").unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "the Java producer failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, p) = l.rsplit_once(' ')?;
            Some((k.to_string(), p.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn murmur2_random_places_keys_where_the_java_client_does() {
    let brokers = crate::common::env("CXP_KAFKA_BROKERS");
    let id = crate::common::unique("partitioner");
    let topic = format!("{id}-keys");
    crate::common::create_topics(&brokers, &[(&topic, 6)]).await;
    // The generator's customer ids: the keys a real run uses.
    let mut keys: Vec<String> = events(3_000, 29).into_iter().map(|g| g.key).collect();
    keys.sort();
    keys.dedup();
    let java = java_partitions(&brokers, &topic, &keys);
    assert_eq!(
        java.len(),
        keys.len(),
        "the Java producer acknowledged every key"
    );
    for partitioner in [Partitioner::Java, Partitioner::Librdkafka] {
        let placed = crate::common::produce_keys(&brokers, &topic, &keys, partitioner).await;
        let same = keys
            .iter()
            .filter(|k| placed.get(*k) == java.get(*k))
            .count();
        eprintln!(
            "{partitioner:?} ({}): {same} of {} keys where Java puts them",
            partitioner.setting(),
            keys.len()
        );
        match partitioner {
            Partitioner::Java => assert_eq!(same, keys.len()),
            // CRC32 vs murmur2: most keys land elsewhere (about 1 in 6 agree by chance).
            Partitioner::Librdkafka => assert!(same < keys.len() / 2),
        }
    }
}
