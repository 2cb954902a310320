//! End to end against real Apache Kafka, the real schema registry and the real ClickHouse
//! server: generated events (out of order, late, malformed, two writer schemas) go through the
//! pipeline binary, and every window row read back with FINAL, every survey and contact fact
//! and every dead letter must equal the independent oracle exactly.

use crate::common::check::check;
use crate::common::harness::{all_visible, events, setup, Opts};
use crate::common::Partitioner;

async fn bounded_run(name: &str, partitioner: Partitioner, seed: u64) {
    let s = setup(name, Opts::default()).await;
    let evs = events(50_000, seed);
    let landed = crate::common::produce_with(
        &s.brokers,
        (&s.topics.0, &s.topics.1),
        &evs,
        &s.encoder,
        partitioner,
    )
    .await;
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_run_equals_the_oracle_with_librdkafka_partitioning() {
    bounded_run("e2e_crc", Partitioner::Librdkafka, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_run_equals_the_oracle_with_java_partitioning() {
    bounded_run("e2e_murmur", Partitioner::Java, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_and_restart_equals_the_oracle() {
    let s = setup("sigterm", Opts::default()).await;
    let evs = events(50_000, 11);
    let split = evs.len() * 6 / 10;
    let landed = s.sigterm_mid_stream(&evs, split).await;
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// Event-time alignment at its most restless: with `kafka.max_stream_skew = "1m"` a stream is
/// paused and resumed many times over while the consumer reads a backlog whose surveys were
/// all produced before its contacts; it must neither stall nor change a single row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_stream_ahead_changes_no_row() {
    let s = setup("align", Opts::default()).await;
    s.edit_config(
        "[kafka.consumer]",
        "max_stream_skew = \"1m\"\n[kafka.consumer]",
    );
    let evs = events(30_000, 13);
    let (surveys, contacts): (Vec<_>, Vec<_>) = evs
        .iter()
        .cloned()
        .partition(|g| g.stream == cx_pipeline::model::Stream::Survey);
    let ordered: Vec<_> = surveys.into_iter().chain(contacts).collect();
    let landed = s.produce(&ordered).await;
    s.run_to_end().await;
    check(&s, &ordered, &all_visible(&landed)).await;
}

#[test]
fn streams_are_keyed_consistently() {
    // Sanity for the oracle's assumption: every generated event is keyed by its customer.
    for g in events(2_000, 3) {
        let customer = match &g.event {
            cx_pipeline::model::Event::Survey(s) => &s.customer_id,
            cx_pipeline::model::Event::Interaction(i) => &i.customer_id,
        };
        assert_eq!(&g.key, customer);
    }
}
