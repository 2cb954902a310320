//! The dead-letter path never stops the job, against real Kafka and ClickHouse: a 1.5 MB
//! malformed message (bigger than any producer default) is cut to
//! `kafka.dead_letter_max_bytes` with headers saying so, and everything around it still
//! equals the oracle. A dead-letter topic the job may not write to (a real Kafka ACL under
//! the broker's StandardAuthorizer, the job authenticated over SASL/PLAIN) stops it at
//! startup, before it consumes anything.

use crate::common::check::{check_facts, compare_rows, expected_for, observed_rows};
use crate::common::harness::{all_visible, events, setup, Opts};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
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
    // Over codec.max_message_bytes (1 MiB), which is checked before anything is read.
    let big = vec![7u8; 1_500_000];
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
    let letters = crate::common::read_dead_letter_records(&s.brokers, &s.topics.2);
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
        assert_eq!(of(h, "reason"), "resource_limit");
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
    *want.entry("resource_limit".into()).or_default() += 1;
    assert_eq!(by_reason, want);
}

/// A broker of this test's own with a SASL/PLAIN listener and an authorizer
/// (`services.sh kafka-up DIR PORT CPORT SASL_PORT`), stopped on drop.
struct AclBroker {
    dir: std::path::PathBuf,
}

impl Drop for AclBroker {
    fn drop(&mut self) {
        let _ = Command::new(crate::common::harness::services_script())
            .args(["kafka-down", &self.dir.to_string_lossy()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_without_write_permission_stops_the_job_at_startup() {
    let services = crate::common::env("CXP_SERVICES_DIR");
    let broker = AclBroker {
        dir: Path::new(&services).join(crate::common::unique("aclbroker")),
    };
    let (port, cport, sport) = (19292, 19293, 19294);
    let ok = Command::new(crate::common::harness::services_script())
        .args([
            "kafka-up",
            &broker.dir.to_string_lossy(),
            &port.to_string(),
            &cport.to_string(),
            &sport.to_string(),
        ])
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "broker with an authorizer started");
    let plain = format!("127.0.0.1:{port}");
    let s = setup(
        "dlq_acl",
        Opts {
            brokers: Some(&plain),
            ..Opts::default()
        },
    )
    .await;
    let denied = format!("{}-denied", s.topics.2);
    crate::common::create_topics(&plain, &[(&denied, 1)]).await;
    let lib = crate::common::env("CXP_KAFKA_LIB");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/DenyWrite.java");
    let out = Command::new("java")
        .args(["-cp", &format!("{lib}/*"), src, &plain, &denied])
        .output()
        .unwrap_or_else(|e| panic!("java: {e}"));
    assert!(
        out.status.success(),
        "ACLs created: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = events(12_000, 13);
    let landed = s.produce(&evs).await;
    // The job connects as User:cx over SASL/PLAIN, the password from the environment.
    s.edit_config(
        &format!("brokers = \"{plain}\""),
        &format!("brokers = \"127.0.0.1:{sport}\""),
    );
    let cfg = std::fs::read_to_string(s.config.path()).unwrap_or_default();
    std::fs::write(
        s.config.path(),
        format!(
            "{cfg}\n[kafka.client]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"\n\"sasl.username\" = \"cx\"\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let secret = [("CXP_KAFKA_SASL_PASSWORD", "cx-secret")];
    s.edit_config(
        &format!("dead_letter_topic = \"{}\"", s.topics.2),
        &format!("dead_letter_topic = \"{denied}\""),
    );
    let text = s.run_refused(&secret).await;
    assert!(
        text.contains(&format!("may not write to {denied}")) && text.contains("grant WRITE"),
        "the refusal names the topic and the fix: {text}"
    );
    assert!(!text.contains("cx-secret"), "the password is never logged");
    assert_eq!(
        s.contacts_written().await,
        0,
        "nothing was consumed before the refusal"
    );
    // The same job with a dead-letter topic it may write to runs, over SASL, exactly.
    s.edit_config(
        &format!("dead_letter_topic = \"{denied}\""),
        &format!("dead_letter_topic = \"{}\"", s.topics.2),
    );
    let code = crate::common::harness::wait_exit(
        s.pipeline_env(&["run", "--until-end"], None, &secret),
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(code, 0, "bounded run over SASL");
    crate::common::check::check(&s, &evs, &all_visible(&landed)).await;
}
