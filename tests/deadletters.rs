//! The dead-letter path never stops the job, against real Kafka and ClickHouse: a 1.5 MB
//! malformed message (bigger than any producer default) is cut to
//! `kafka.dead_letter_max_bytes` with headers saying so, and everything around it still
//! equals the oracle.

mod common;

use common::check::{check_facts, compare_rows, expected_for, observed_rows};
use common::harness::{all_visible, events, setup, Opts};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_reject_is_cut_and_the_job_goes_on() {
    let s = setup("dlq_big", Opts::default()).await;
    // A topic and a producer with raised limits, as some deployments have.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic(&s.topics.0)).set("max.message.bytes", "3000000");
    for r in admin
        .alter_configs(&[alter], &AdminOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        r.unwrap_or_else(|e| panic!("alter config: {e:?}"));
    }
    let big_producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("message.max.bytes", "3000000")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));

    let evs = events(6_000, 31);
    let half = evs.len() / 2;
    let mut landed = s.produce(&evs[..half]).await;
    let big = vec![7u8; 1_500_000]; // not magic byte 0: bad_magic_byte
    let d = big_producer
        .send(
            FutureRecord::to(&s.topics.0).key("c000001").payload(&big),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce 1.5 MB: {e}"));
    let (p, o) = (d.partition, d.offset);
    landed.extend(s.produce(&evs[half..]).await);
    s.run_to_end().await;

    let exp = expected_for(&s, &evs, &all_visible(&landed));
    compare_rows(&exp.rows, &observed_rows(&s).await);
    check_facts(&s, &exp).await;
    let letters = common::read_dead_letter_records(&s.brokers, &s.topics.2);
    let of = |h: &HashMap<String, String>, k: &str| h.get(k).cloned().unwrap_or_default();
    let big_letters: Vec<_> = letters
        .iter()
        .filter(|(h, _)| {
            of(h, "source_topic") == s.topics.0
                && of(h, "source_partition") == p.to_string()
                && of(h, "source_offset") == o.to_string()
        })
        .collect();
    assert!(!big_letters.is_empty(), "the big message was dead-lettered");
    for (h, len) in big_letters {
        assert_eq!(of(h, "reason"), "bad_magic_byte");
        assert_eq!(of(h, "payload_truncated"), "true");
        assert_eq!(of(h, "payload_size"), "1500000");
        assert_eq!(*len, 900_000);
    }
    // Every other reject is there too, whole.
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (h, _) in &letters {
        let id = (
            of(h, "source_topic"),
            of(h, "source_partition"),
            of(h, "source_offset"),
        );
        if seen.insert(id) {
            *by_reason.entry(of(h, "reason")).or_default() += 1;
        }
        if of(h, "payload_truncated").is_empty() {
            assert!(of(h, "payload_size").is_empty());
        }
    }
    let mut want = exp.rejected.clone();
    *want.entry("bad_magic_byte".into()).or_default() += 1;
    assert_eq!(by_reason, want);
}
