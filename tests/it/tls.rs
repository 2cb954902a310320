//! Kafka over TLS, against a real Apache Kafka broker of this test's own with certificates
//! made at test time (`scripts/make-certs.sh`, openssl): SASL_SSL with SCRAM-SHA-512 (the
//! user created by Kafka's own storage tool) carries the full end-to-end test to the exact
//! oracle result, with the password read from a file; a wrong password, an unknown CA and an
//! expired broker certificate each stop the job at startup with a message naming the problem
//! and no secret; mutual TLS works with a client certificate and fails without one.

use crate::common::check::check;
use crate::common::harness::{all_visible, events, services_script, setup, wait_exit, Opts, Setup};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PORT: u16 = 19492;
const BASE: u16 = 19494;
const SECRET: &str = "cx-secret";

struct TlsBroker {
    dir: PathBuf,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = Command::new(services_script())
            .args(["kafka-down", &self.dir.to_string_lossy()])
            .status();
    }
}

fn certs_and_broker() -> (PathBuf, TlsBroker) {
    let services = crate::common::env("CXP_SERVICES_DIR");
    let certs = Path::new(&services).join(crate::common::unique("certs"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-certs.sh");
    let ok = Command::new(script)
        .arg(&certs)
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "certificates made");
    let broker = TlsBroker {
        dir: Path::new(&services).join(crate::common::unique("tlsbroker")),
    };
    let ok = Command::new(services_script())
        .args([
            "kafka-up-tls",
            &broker.dir.to_string_lossy(),
            &PORT.to_string(),
            &(PORT + 1).to_string(),
            &BASE.to_string(),
            &certs.to_string_lossy(),
        ])
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "TLS broker started");
    (certs, broker)
}

/// Points the job at `listener` with these `[kafka.client]` settings (replacing earlier ones).
fn secure(s: &Setup, listener: u16, client: &[(&str, String)]) {
    let cfg = std::fs::read_to_string(s.config.path()).unwrap_or_default();
    let cfg = cfg
        .split("\n[kafka.client]")
        .next()
        .unwrap_or_default()
        .to_string();
    let start = cfg.find("brokers = \"").unwrap_or(0);
    let end = cfg[start..].find('\n').map_or(cfg.len(), |e| start + e);
    let mut cfg = format!(
        "{}brokers = \"127.0.0.1:{listener}\"{}",
        &cfg[..start],
        &cfg[end..]
    );
    cfg.push_str("\n[kafka.client]\n");
    for (k, v) in client {
        cfg.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    std::fs::write(s.config.path(), cfg).unwrap_or_else(|e| panic!("{e}"));
}

fn scram(certs: &Path, ca: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", "SCRAM-SHA-512".into()),
        ("sasl.username", "cx".into()),
        ("ssl.ca.location", certs.join(ca).to_string_lossy().into()),
    ]
}

fn ssl(certs: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SSL".into()),
        (
            "ssl.ca.location",
            certs.join("ca.pem").to_string_lossy().into(),
        ),
    ]
}

/// Messages in both input topics (read over the plaintext listener).
fn total_messages(brokers: &str, s: &Setup) -> i64 {
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0;
    for t in [&s.topics.0, &s.topics.1] {
        for p in 0..crate::common::harness::PARTITIONS {
            let (lo, hi) = rdkafka::consumer::Consumer::fetch_watermarks(
                &consumer,
                t,
                p,
                Duration::from_secs(10),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            n += hi - lo;
        }
    }
    n
}

/// A refused start: what, which listener, the client settings, extra environment, and the
/// words its message must contain.
type Case<'a> = (
    &'a str,
    u16,
    Vec<(&'static str, String)>,
    &'a [(&'a str, &'a str)],
    &'a [&'a str],
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_runs_exactly_over_sasl_ssl_and_refuses_bad_credentials_and_certificates() {
    let (certs, _broker) = certs_and_broker();
    let plain = format!("127.0.0.1:{PORT}");
    let s = setup(
        "tls",
        Opts {
            brokers: Some(&plain),
            ..Opts::default()
        },
    )
    .await;
    let pw_file = certs.join("kafka-password");
    std::fs::write(&pw_file, format!("{SECRET}\n")).unwrap_or_else(|e| panic!("{e}"));
    let pw = pw_file.to_string_lossy().to_string();
    let from_file = [("CXP_KAFKA_SASL_PASSWORD_FILE", pw.as_str())];
    let evs = events(12_000, 31);
    let landed = s.produce(&evs).await;

    let cases: [Case<'_>; 4] = [
        (
            "a wrong password",
            BASE + 1,
            scram(&certs, "ca.pem"),
            &[("CXP_KAFKA_SASL_PASSWORD", "not-the-password")],
            &["Authentication failed", "SCRAM-SHA-512"],
        ),
        (
            "an unknown CA",
            BASE + 1,
            scram(&certs, "other-ca.pem"),
            &from_file,
            &["certificate verify failed"],
        ),
        (
            "an expired broker certificate",
            BASE + 2,
            ssl(&certs),
            &[],
            &["expired"],
        ),
        (
            "mutual TLS without a client certificate",
            BASE + 3,
            ssl(&certs),
            &[],
            &["SSL"],
        ),
    ];
    for (what, listener, client, env, words) in cases {
        secure(&s, listener, &client);
        let text = s.run_refused(env).await;
        eprintln!("{what}: {}", text.lines().last().unwrap_or_default());
        for w in words {
            assert!(
                text.contains(w),
                "{what}: the message names the problem ({w}): {text}"
            );
        }
        assert!(text.contains("cannot connect to Kafka"), "{what}: {text}");
        for secret in [SECRET, "not-the-password"] {
            assert!(!text.contains(secret), "{what}: a secret reached the log");
        }
    }
    assert_eq!(
        s.contacts_written().await,
        0,
        "the refused runs consumed nothing"
    );

    // SASL_SSL with SCRAM-SHA-512, the password from a file: the full check.
    secure(&s, BASE + 1, &scram(&certs, "ca.pem"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("run.log");
    let code = wait_exit(
        s.pipeline_env(&["run", "--until-end"], Some(&log), &from_file),
        Duration::from_secs(600),
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "bounded run over SASL_SSL: {text}");
    assert!(!text.contains(SECRET), "the password never reaches the log");
    check(&s, &evs, &all_visible(&landed)).await;

    // The other mechanisms over TLS: SCRAM-SHA-256 and PLAIN (the same state resumes; nothing
    // new to read), and the `generate` producer over SASL_SSL.
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let mut c = scram(&certs, "ca.pem");
        c[1].1 = mechanism.into();
        secure(&s, BASE + 1, &c);
        let code = wait_exit(
            s.pipeline_env(&["run", "--until-end"], None, &from_file),
            Duration::from_secs(300),
        )
        .await;
        assert_eq!(code, 0, "bounded run over SASL_SSL with {mechanism}");
    }
    let before = total_messages(&plain, &s);
    let code = wait_exit(
        s.pipeline_env(
            &["generate", "--count", "300", "--rate", "0"],
            None,
            &from_file,
        ),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(code, 0, "generate over SASL_SSL");
    assert_eq!(
        total_messages(&plain, &s) - before,
        300,
        "generate produced over SASL_SSL"
    );

    // Mutual TLS with a client certificate: the same state resumes (nothing new to read).
    let mut mtls = ssl(&certs);
    mtls.push((
        "ssl.certificate.location",
        certs.join("client.pem").to_string_lossy().into(),
    ));
    mtls.push((
        "ssl.key.location",
        certs.join("client.key").to_string_lossy().into(),
    ));
    secure(&s, BASE + 3, &mtls);
    let code = wait_exit(
        s.pipeline(&["run", "--until-end"], None),
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(code, 0, "bounded run over mutual TLS");
}

/// ClickHouse (18.16's `https_port`) and the real registry (Apicurio's TLS port) over HTTPS
/// with the test CA, certificates made when the services started: the end-to-end result is
/// exact; without the CA the job refuses to start, naming the certificate problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_and_the_registry_over_https_with_a_private_ca() {
    let s = setup("https", Opts::default()).await;
    let ca = crate::common::env("CXP_TEST_CA");
    let (ch_https, reg_https) = (
        crate::common::env("CXP_CLICKHOUSE_HTTPS_URL"),
        crate::common::env("CXP_SCHEMA_REGISTRY_HTTPS_URL"),
    );
    s.edit_config(
        &format!("url = \"{}\"", s.ch),
        &format!("url = \"{ch_https}\""),
    );
    let reg = crate::common::env("CXP_SCHEMA_REGISTRY_URL");
    s.edit_config(
        &format!("schema_registry_url = \"{reg}\""),
        &format!("schema_registry_url = \"{reg_https}\""),
    );
    let evs = events(12_000, 37);
    let landed = s.produce(&evs).await;

    // Without the private CA: refused at startup, before anything is consumed.
    let text = s.run_refused(&[]).await;
    assert!(
        text.contains("certificate verify failed") && text.contains(&ch_https),
        "{text}"
    );
    s.edit_config(
        &format!("url = \"{ch_https}\""),
        &format!("url = \"{ch_https}\"\nca_file = \"{ca}\""),
    );
    s.edit_config(
        &format!("schema_registry_url = \"{reg_https}\""),
        &format!(
            "schema_registry_url = \"{reg_https}\"\nschema_registry_ca_file = \"{ca}\"\nschema_registry_user = \"cx\""
        ),
    );
    // Every secret of a secured run, the ClickHouse one from a file: none may reach the log.
    s.edit_config(
        &format!("\nca_file = \"{ca}\""),
        &format!("\nca_file = \"{ca}\"\nuser = \"cx_writer\""),
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pw = dir.path().join("ch-password");
    std::fs::write(&pw, "ch-writer-secret-1\n").unwrap_or_else(|e| panic!("{e}"));
    let pw = pw.to_string_lossy().to_string();
    let log = dir.path().join("run.log");
    let code = wait_exit(
        s.pipeline_env(
            &["run", "--until-end"],
            Some(&log),
            &[
                ("CXP_CLICKHOUSE_PASSWORD_FILE", pw.as_str()),
                ("CXP_SCHEMA_REGISTRY_PASSWORD", "registry-secret-2"),
            ],
        ),
        Duration::from_secs(600),
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "bounded run over HTTPS: {text}");
    for secret in ["ch-writer-secret-1", "registry-secret-2"] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
    assert!(text.lines().count() > 3, "the run logged (RUST_LOG=info)");
    check(&s, &evs, &all_visible(&landed)).await;
}
