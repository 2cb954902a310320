//! A planted password never reaches a message, on each path an operator meets when a
//! deployment is wrong: config text that does not parse (a typo'd key, an unterminated string,
//! a wrong type), a URL whose scheme is wrong or missing, a `_FILE` that cannot be read, and at
//! run time against the real services: ClickHouse refusing the password (HTTP 516/401), a
//! ClickHouse URL with credentials pointing at a closed port, and librdkafka settings that hold
//! credentials (`ssl.key.password`) in a run logged at debug level. (Kafka SASL with a wrong
//! password and a TLS failure with an unknown CA are in `tls.rs`.)

use crate::common::harness::{setup, Opts};
use std::process::Command;

/// Each planted value differs, so a leak names its path.
const PLANTED: [&str; 10] = [
    "pl4ntedTypo",
    "pl4ntedOpen",
    "pl4ntedType",
    "pl4ntedScheme",
    "pl4ntedBare",
    "pl4ntedSsl",
    "pl4ntedWrong",
    "pl4ntedClosed",
    "pl4ntedRegistry",
    "pl4ntedSaslFile",
];

/// Runs `check-config`-like startup: `run --until-end` on a config that must be refused;
/// returns everything the process printed.
fn refused_text(config: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cx-pipeline"));
    cmd.arg("--config").arg(&path).args(["run", "--until-end"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("CXP_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success(), "refused: {config}");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

fn no_planted(what: &str, text: &str) {
    for p in PLANTED {
        assert!(
            !text.contains(p),
            "{what}: a planted password reached the output"
        );
    }
}

/// What is wrong, the config text, its environment, and what the message must name.
type Case = (
    &'static str,
    String,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn config_errors_name_the_key_never_the_password() {
    let cases: [Case; 6] = [
        (
            "a typo'd key",
            format!(
                "[clickhouse]\nurl = \"http://127.0.0.1:8123\"\npasword = \"{}\"\n",
                PLANTED[0]
            ),
            &[],
            "pasword",
        ),
        (
            "an unterminated string",
            format!(
                "[clickhouse]\npassword = \"{}\n[sink]\nmax_rows = 1\n",
                PLANTED[1]
            ),
            &[],
            "line 2",
        ),
        (
            "a wrong type",
            format!("[clickhouse]\npassword = [\"{}\"]\n", PLANTED[2]),
            &[],
            "clickhouse",
        ),
        (
            "a wrong scheme with credentials",
            format!(
                "[clickhouse]\nurl = \"clickhouse://default:{}@127.0.0.1:9000\"\n",
                PLANTED[3]
            ),
            &[],
            "clickhouse.url",
        ),
        (
            "credentials without a scheme",
            format!(
                "[detector]\nalertmanager_url = \"oncall:{}@127.0.0.1:9093\"\n",
                PLANTED[4]
            ),
            &[],
            "detector.alertmanager_url",
        ),
        (
            "a password file that cannot be read",
            "[clickhouse]\nurl = \"http://127.0.0.1:8123\"\n".to_string(),
            &[("CXP_CLICKHOUSE_PASSWORD_FILE", "/nonexistent/pl4ntedPath")],
            "CXP_CLICKHOUSE_PASSWORD_FILE",
        ),
    ];
    for (what, config, env, names) in cases {
        let text = refused_text(&config, env);
        assert!(
            text.contains(names),
            "{what}: the message names {names}: {text}"
        );
        no_planted(what, &text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_refusals_never_show_a_password() {
    let s = setup("secrets", Opts::default()).await;
    // Credentials in a librdkafka setting, logged at debug level all through the run.
    s.edit_config(
        "[kafka.consumer]",
        &format!(
            "[kafka.client]\n\"ssl.key.password\" = \"{}\"\n[kafka.consumer]",
            PLANTED[5]
        ),
    );
    s.edit_config("[clickhouse]", "[clickhouse]\nuser = \"cx_writer\"");
    s.edit_config("[codec]", "[codec]\nschema_registry_user = \"cx\"");
    // The other passwords of a deployment, one from a file, set on every run below.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sasl = dir.path().join("sasl-password");
    std::fs::write(&sasl, format!("{}\n", PLANTED[9])).unwrap_or_else(|e| panic!("{e}"));
    let sasl = sasl.to_string_lossy().to_string();
    let others = [
        ("CXP_SCHEMA_REGISTRY_PASSWORD", PLANTED[8]),
        ("CXP_KAFKA_SASL_PASSWORD_FILE", sasl.as_str()),
        ("RUST_LOG", "debug"),
    ];

    // ClickHouse refuses the password.
    let text = s
        .run_refused(
            &[
                [("CXP_CLICKHOUSE_PASSWORD", PLANTED[6])].as_slice(),
                &others,
            ]
            .concat(),
        )
        .await;
    assert!(
        text.contains("cx_writer") || text.to_lowercase().contains("authentication"),
        "the refusal names the user or the authentication: {text}"
    );
    no_planted("a wrong ClickHouse password", &text);

    // Credentials in the URL of a server that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    s.edit_config(
        &format!("url = \"{}\"", s.ch),
        &format!("url = \"http://cx_writer:{}@{closed}\"", PLANTED[7]),
    );
    let text = s.run_refused(&others).await;
    assert!(
        text.contains(&closed.to_string()),
        "the refusal names the server: {text}"
    );
    no_planted("a closed ClickHouse port", &text);
}
