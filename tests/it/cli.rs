//! The command line against the real services: `generate` registers its schemas (in the real
//! registry) and produces exactly the requested messages; `demo` writes to ClickHouse when a URL
//! is configured, and its rows add up to the events it reports.

use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_produces_the_requested_count_to_both_topics() {
    let brokers = crate::common::env("CXP_KAFKA_BROKERS");
    let id = crate::common::unique("gen");
    let (st, it) = (format!("{id}-surveys"), format!("{id}-interactions"));
    crate::common::create_topics(&brokers, &[(&st, 2), (&it, 2)]).await;
    let registry = crate::common::env("CXP_SCHEMA_REGISTRY_URL");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[kafka]\nbrokers = \"{brokers}\"\nsurvey_topic = \"{st}\"\ninteraction_topic = \"{it}\"\n[codec]\nschema_registry_url = \"{registry}\"\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let st2 = st.clone();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cx-pipeline"))
            .args([
                "--config",
                cfg.to_str().unwrap_or_default(),
                "generate",
                "--count",
                "3000",
                "--rate",
                "0",
            ])
            .env("RUST_LOG", "warn")
            .status()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut total = 0;
    let mut per_topic = Vec::new();
    for t in [&st2, &it] {
        let mut n = 0;
        for p in 0..2 {
            let (lo, hi) = rdkafka::consumer::Consumer::fetch_watermarks(
                &consumer,
                t,
                p,
                Duration::from_secs(10),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            n += hi - lo;
        }
        per_topic.push(n);
        total += n;
    }
    assert_eq!(total, 3000, "{per_topic:?}");
    // The schemas went to the real registry, one version per subject.
    for t in [&st2, &it] {
        let versions = crate::common::registry::subject_versions(&registry, &format!("{t}-value"));
        assert_eq!(versions, vec![1], "{t}-value registered once");
    }
    assert!(
        per_topic.iter().all(|n| *n > 300),
        "both topics get traffic: {per_topic:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_writes_consistent_rows_to_clickhouse() {
    let ch = crate::common::env("CXP_CLICKHOUSE_URL");
    let db = crate::common::unique("demo");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[clickhouse]\nurl = \"{ch}\"\ndemo_database = \"{db}\"\n[metrics]\nlisten = \"\"\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cx-pipeline"))
            .args([
                "--config",
                cfg.to_str().unwrap_or_default(),
                "demo",
                "--events",
                "4000",
                "--rate",
                "0",
            ])
            .env("RUST_LOG", "warn")
            .output()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NPS") && text.contains("tech-l2"), "{text}");
    // Every accepted contact is one fact row and counted once in the overall 1d windows.
    let facts = crate::common::count(
        &ch,
        &format!("SELECT count() FROM {db}.interaction_facts FINAL"),
    )
    .await;
    let windowed = crate::common::count(&ch, &format!("SELECT toUInt64(sum(sign * contacts)) FROM {db}.window_aggregates FINAL WHERE window_size_s = 86400 AND grouping = ''")).await;
    let surveys =
        crate::common::count(&ch, &format!("SELECT count() FROM {db}.survey_facts FINAL")).await;
    let responses = crate::common::count(&ch, &format!("SELECT toUInt64(sum(sign * responses)) FROM {db}.window_aggregates FINAL WHERE window_size_s = 86400 AND grouping = ''")).await;
    let settled = crate::common::count(
        &ch,
        &format!("SELECT count() FROM {db}.survey_facts FINAL WHERE is_final = 1"),
    )
    .await;
    assert!(facts > 1000 && surveys > 300, "{facts} {surveys}");
    assert_eq!(facts, windowed);
    // Every settled survey is counted; an unsettled one too unless it came in late (docs/SEMANTICS.md,
    // Bounded runs), and the demo's generator sends a few very late ones.
    assert!(
        settled <= responses && responses <= surveys && settled < surveys,
        "settled {settled} responses {responses} facts {surveys}"
    );
}

/// The demo never writes synthetic rows next to real results: not into the pipeline's own
/// database, and not into one that holds pipeline checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_refuses_a_database_that_holds_pipeline_data() {
    let ch = crate::common::env("CXP_CLICKHOUSE_URL");
    let db = crate::common::unique("demo_real");
    let run = |toml: String| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, toml).unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new(env!("CARGO_BIN_EXE_cx-pipeline"))
            .args([
                "--config",
                cfg.to_str().unwrap_or_default(),
                "demo",
                "--events",
                "500",
                "--rate",
                "0",
            ])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = run(format!(
        "[clickhouse]\nurl = \"{ch}\"\ndatabase = \"{db}\"\ndemo_database = \"{db}\"\n[metrics]\nlisten = \"\"\n"
    ));
    assert!(!ok && err.contains("is the pipeline's database"), "{err}");
    // A database where a pipeline has checkpointed.
    let client = clickhouse::Client::default().with_url(&ch);
    client
        .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .query(&format!(
            "CREATE TABLE {db}.checkpoints (consumer_group String, source_partition Int32, version UInt64, survey_offset Int64, interaction_offset Int64, state String, written_at DateTime('UTC')) ENGINE = ReplacingMergeTree(version) ORDER BY (consumer_group, source_partition)"
        ))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .query(&format!(
            "INSERT INTO {db}.checkpoints VALUES ('g', 0, 1, 5, 5, 'x', now())"
        ))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, err) = run(format!(
        "[clickhouse]\nurl = \"{ch}\"\ndemo_database = \"{db}\"\n[metrics]\nlisten = \"\"\n"
    ));
    assert!(!ok && err.contains("holds pipeline checkpoints"), "{err}");
    let tables = crate::common::count(
        &ch,
        &format!("SELECT count() FROM system.tables WHERE database = '{db}'"),
    )
    .await;
    assert_eq!(
        tables, 1,
        "the refused demo created and wrote nothing there"
    );
}
