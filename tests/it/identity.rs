//! Checkpoints that know what they are, against real Kafka and ClickHouse: a topic deleted
//! and created again under the same state id refuses to start (its offsets would skip
//! records), a checkpoint of the previous format (2) is migrated and the result is exact, and
//! one without a header (format 1) refuses. The changed-settings refusal is in
//! `misbehave.rs`.

use crate::common::check::check;
use crate::common::harness::{all_visible, events, setup, Opts};
use cx_pipeline::delivery::format::SourceIdentity;
use cx_pipeline::delivery::store::CheckpointRow;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

fn client(url: &str, db: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(url)
        .with_database(db)
        .with_compression(clickhouse::Compression::None)
        .with_validation(false)
}

async fn checkpoints(s: &crate::common::harness::Setup) -> Vec<CheckpointRow> {
    client(&s.ch, &s.db)
        .query("SELECT ?fields FROM checkpoints FINAL")
        .fetch_all::<CheckpointRow>()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Replaces every checkpoint's state with `rewrite(state)`, as a newer copy.
async fn rewrite_checkpoints(
    s: &crate::common::harness::Setup,
    rewrite: impl Fn(&[u8]) -> Vec<u8>,
) {
    let rows = checkpoints(s).await;
    assert!(!rows.is_empty(), "the first run wrote checkpoints");
    let c = client(&s.ch, &s.db);
    let mut ins = c
        .insert::<CheckpointRow>("checkpoints")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for mut r in rows {
        r.state = rewrite(&r.state);
        r.version += 1;
        ins.write(&r).await.unwrap_or_else(|e| panic!("{e}"));
    }
    ins.end().await.unwrap_or_else(|e| panic!("{e}"));
}

async fn row_count(s: &crate::common::harness::Setup) -> u64 {
    crate::common::count(
        &s.ch,
        &format!("SELECT count() FROM {}.window_aggregates", s.db),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_again_under_the_same_state_id_refuses_to_start() {
    let s = setup("recreated", Opts::default()).await;
    let evs = events(3_000, 5);
    s.produce(&evs).await;
    s.run_to_end().await;
    let before = row_count(&s).await;

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    admin
        .delete_topics(&[&s.topics.0], &AdminOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Deletion completes asynchronously; create again once the name is free.
    let start = Instant::now();
    loop {
        let res = admin
            .create_topics(
                &[rdkafka::admin::NewTopic::new(
                    &s.topics.0,
                    crate::common::harness::PARTITIONS,
                    rdkafka::admin::TopicReplication::Fixed(1),
                )],
                &AdminOptions::new(),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if res.iter().all(|r| r.is_ok()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{res:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    s.produce(&events(500, 6)).await;
    let text = s.run_refused(&[]).await;
    assert!(
        text.contains(&format!(
            "topic {} was deleted and created again",
            s.topics.0
        )) && text.contains("kafka.state_id"),
        "the refusal names the recreated topic and how to proceed: {text}"
    );
    assert_eq!(row_count(&s).await, before, "the refused run wrote nothing");
}

/// Format 3's header as this test reads it, independently of the crate's private types.
#[derive(Serialize, Deserialize)]
struct Header3 {
    format: u16,
    settings: Vec<(String, String)>,
    source: SourceIdentity,
}

#[derive(Serialize, Deserialize)]
struct Header2 {
    format: u16,
    settings: Vec<(String, String)>,
}

fn split(state: &[u8]) -> (Header3, Vec<u8>) {
    let body = state
        .strip_prefix(b"CXPS")
        .unwrap_or_else(|| panic!("magic"));
    let (h, rest): (Header3, &[u8]) =
        postcard::take_from_bytes(body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.format, 3);
    (h, rest.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_2_checkpoint_is_migrated_and_a_format_1_one_refused() {
    let s = setup("oldformat", Opts::default()).await;
    let evs = events(16_000, 9);
    let half = evs.len() / 2;
    let mut landed = s.produce(&evs[..half]).await;
    s.run_to_end().await;
    let ids: Vec<SourceIdentity> = checkpoints(&s)
        .await
        .iter()
        .map(|r| split(&r.state).0.source)
        .collect();
    assert!(
        ids.iter().all(|i| i.topics[0].name == s.topics.0
            && i.topics[0].id.is_some()
            && i.cluster_id.is_some()),
        "checkpoints record the topics' ids and the cluster"
    );

    // As an earlier version left them: the same state behind a header without the source.
    rewrite_checkpoints(&s, |state| {
        let (h, rest) = split(state);
        let mut out = b"CXPS".to_vec();
        out = postcard::to_extend(
            &Header2 {
                format: 2,
                settings: h.settings,
            },
            out,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        out.extend(rest);
        out
    })
    .await;
    landed.extend(s.produce(&evs[half..]).await);
    s.run_to_end().await;
    for r in checkpoints(&s).await {
        assert_eq!(split(&r.state).0.format, 3, "rewritten in the new format");
    }
    check(&s, &evs, &all_visible(&landed)).await;

    // Without any header: refused, naming the format.
    rewrite_checkpoints(&s, |state| split(state).1).await;
    let text = s.run_refused(&[]).await;
    assert!(
        text.contains("format 1 (no header)") && text.contains("kafka.state_id"),
        "{text}"
    );
}
