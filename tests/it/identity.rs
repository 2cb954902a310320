//! Checkpoints that know what they are, against real Kafka and ClickHouse: a topic deleted
//! and created again under the same state id refuses to start (its offsets would skip
//! records), checkpoints of the previous formats (3 and 2, the whole state inline) are migrated to
//! bases and marks and the result is exact, and one without a header (format 1) refuses. The changed-settings refusal is in
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

/// Replaces every checkpoint's state with `rewrite(partition, state)`, as a newer copy.
async fn rewrite_checkpoints(
    s: &crate::common::harness::Setup,
    rewrite: impl Fn(i32, &[u8]) -> Vec<u8>,
) {
    let rows = checkpoints(s).await;
    assert!(!rows.is_empty(), "the first run wrote checkpoints");
    let c = client(&s.ch, &s.db);
    let mut ins = c
        .insert::<CheckpointRow>("checkpoints")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for mut r in rows {
        r.state = rewrite(r.source_partition, &r.state);
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

/// The header (format 3 and 4) as this test reads it, independently of the crate's types.
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
    (h, rest.to_vec())
}

/// Each partition's newest base (after a bounded run's final flush, the one its mark names):
/// (partition, state bytes).
async fn newest_bases(s: &crate::common::harness::Setup) -> Vec<(i32, Vec<u8>)> {
    #[derive(clickhouse::Row, Deserialize)]
    struct Base {
        source_partition: i32,
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
    }
    client(&s.ch, &s.db)
        .query(
            "SELECT source_partition, argMax(state, version) AS state \
             FROM checkpoint_bases FINAL GROUP BY source_partition",
        )
        .fetch_all::<Base>()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|b| (b.source_partition, b.state))
        .collect()
}

/// Rewrites every partition's checkpoint as an earlier version left it: the whole state
/// inline in `checkpoints`, behind the header `header` builds from the current one.
async fn as_inline(s: &crate::common::harness::Setup, header: impl Fn(Header3) -> Vec<u8>) {
    let bases = newest_bases(s).await;
    rewrite_checkpoints(s, |p, _| {
        let (_, base) = bases
            .iter()
            .find(|(bp, _)| *bp == p)
            .unwrap_or_else(|| panic!("no base for partition {p}"));
        let (h, rest) = split(base);
        assert_eq!(h.format, 4, "bases are format 4");
        let mut out = header(h);
        out.extend(rest);
        out
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_2_and_3_are_migrated_and_a_format_1_one_refused() {
    let s = setup("oldformat", Opts::default()).await;
    let evs = events(18_000, 9);
    let third = evs.len() / 3;
    let mut landed = s.produce(&evs[..third]).await;
    s.run_to_end().await;
    let ids: Vec<SourceIdentity> = checkpoints(&s)
        .await
        .iter()
        .map(|r| split(&r.state).0.source)
        .chain(newest_bases(&s).await.iter().map(|b| split(&b.1).0.source))
        .collect();
    assert!(
        ids.iter().all(|i| i.topics[0].name == s.topics.0
            && i.topics[0].id.is_some()
            && i.cluster_id.is_some()),
        "marks and bases record the topics' ids and the cluster"
    );

    // As the previous version (format 3) left them: the whole state inline.
    as_inline(&s, |h| {
        postcard::to_extend(&Header3 { format: 3, ..h }, b"CXPS".to_vec())
            .unwrap_or_else(|e| panic!("{e}"))
    })
    .await;
    landed.extend(s.produce(&evs[third..2 * third]).await);
    s.run_to_end().await;
    for r in checkpoints(&s).await {
        assert_eq!(split(&r.state).0.format, 4, "rewritten in the new format");
    }
    // As format 2 left them: the same, behind a header without the source.
    as_inline(&s, |h| {
        let h2 = Header2 {
            format: 2,
            settings: h.settings,
        };
        postcard::to_extend(&h2, b"CXPS".to_vec()).unwrap_or_else(|e| panic!("{e}"))
    })
    .await;
    landed.extend(s.produce(&evs[2 * third..]).await);
    s.run_to_end().await;
    for r in checkpoints(&s).await {
        assert_eq!(split(&r.state).0.format, 4, "rewritten in the new format");
    }
    check(&s, &evs, &all_visible(&landed)).await;

    // Without any header: refused, naming the format.
    as_inline(&s, |_| Vec::new()).await;
    let text = s.run_refused(&[]).await;
    assert!(
        text.contains("format 1 (no header)") && text.contains("kafka.state_id"),
        "{text}"
    );
}

/// `checkpoint_bases` as the first format-4 version created it (ClickHouse's default 8,192
/// rows per index granule, on which 18.16 refused to read one base out of a merged part of
/// hundreds of 4 MiB chunks) is moved aside, copied into the one-row-granule layout at the
/// next start, and its bases restore: the result stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coarse_granule_bases_table_is_migrated_and_its_bases_restore() {
    let s = setup("granules", Opts::default()).await;
    let evs = events(12_000, 17);
    let half = evs.len() / 2;
    let mut landed = s.produce(&evs[..half]).await;
    s.run_to_end().await;
    let c = client(&s.ch, &s.db);
    let engine = || async {
        c.query("SELECT engine_full FROM system.tables WHERE database = ? AND name = 'checkpoint_bases'")
            .bind(&s.db)
            .fetch_one::<String>()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(
        engine().await.contains("index_granularity = 1"),
        "{}",
        engine().await
    );
    let db = &s.db;
    for sql in [
        format!(
            "CREATE TABLE {db}.coarse AS {db}.checkpoint_bases ENGINE = ReplacingMergeTree(version) \
             ORDER BY (consumer_group, source_partition, epoch, owner, parity, chunk) \
             SETTINGS index_granularity = 8192"
        ),
        format!("INSERT INTO {db}.coarse SELECT * FROM {db}.checkpoint_bases"),
        format!("DROP TABLE {db}.checkpoint_bases"),
        format!("RENAME TABLE {db}.coarse TO {db}.checkpoint_bases"),
    ] {
        c.query(&sql)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert!(engine().await.contains("index_granularity = 8192"));
    landed.extend(s.produce(&evs[half..]).await);
    s.run_to_end().await;
    assert!(engine().await.contains("index_granularity = 1"), "migrated");
    check(&s, &evs, &all_visible(&landed)).await;
}
