use super::*;

#[test]
fn defaults_are_valid() {
    let v = Config::default()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v.settings.window.sizes_ms(),
        &[60_000, 3_600_000, 86_400_000]
    );
}

#[test]
fn unknown_keys_fail_naming_the_key() {
    let e = toml::from_str::<Config>("[window]\nsizez = [\"1m\"]\n")
        .err()
        .map(|e| e.to_string());
    assert!(e.unwrap_or_default().contains("sizez"));
}

#[test]
fn every_bad_value_is_listed_with_its_key() {
    let cfg: Config = toml::from_str(
        "[window]\nsizes = [\"1m\", \"soon\"]\ngrouping_sets = [[\"colour\"]]\n[join]\nmax_wait = \"-3\"\n[sink]\nmax_rows = 0\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let msg = cfg
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    for key in [
        "window.sizes[1]",
        "window.grouping_sets[0]",
        "join.max_wait",
        "sink.max_rows",
    ] {
        assert!(msg.contains(key), "{key} missing from: {msg}");
    }
}

#[test]
fn secrets_stay_out_of_debug_and_env_overrides_apply() {
    let mut cfg = Config::default();
    cfg.apply_env(|k| match k {
        "CXP_CLICKHOUSE_PASSWORD" => Some("hunter2".into()),
        "CXP_KAFKA_SASL_PASSWORD" => Some("s3cret".into()),
        "CXP_KAFKA_BROKERS" => Some("b:1".into()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("s3cret"), "{dbg}");
    assert_eq!(cfg.kafka.brokers, "b:1");
    assert_eq!(
        cfg.kafka
            .client_settings()
            .get("sasl.password")
            .map(String::as_str),
        Some("s3cret")
    );
}

#[test]
fn removed_and_inconsistent_time_keys_are_named() {
    let mut c = Config::default();
    c.kafka.idle_timeout = Some("30s".into());
    c.window.late_horizon = "1m".into();
    c.ingest.min_event_time = "yesterday".into();
    c.ingest.max_duration = "0s".into();
    c.ingest.max_ids_per_partition = 0;
    let errs = c.validate().err().map(|e| e.0).unwrap_or_default();
    for key in [
        "kafka.idle_timeout was removed",
        "window.late_horizon",
        "ingest.min_event_time",
        "ingest.max_duration",
        "ingest.max_ids_per_partition",
    ] {
        assert!(errs.iter().any(|e| e.contains(key)), "{key}: {errs:?}");
    }
}

#[test]
fn an_assignment_strategy_that_splits_pairs_is_refused() {
    let mut c = Config::default();
    c.kafka.consumer.insert(
        "partition.assignment.strategy".into(),
        "cooperative-sticky".into(),
    );
    let errs = c.validate().err().map(|e| e.0).unwrap_or_default();
    assert!(
        errs.iter()
            .any(|e| e.contains("partition.assignment.strategy") && e.contains("range")),
        "{errs:?}"
    );
    c.kafka
        .consumer
        .insert("partition.assignment.strategy".into(), "range".into());
    assert!(c.validate().is_ok());
}

#[test]
fn secrets_come_from_files_and_a_bad_file_names_the_variable_not_the_content() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("pw");
    std::fs::write(&path, "from-a-file\n").unwrap_or_else(|e| panic!("{e}"));
    let p = path.to_string_lossy().to_string();
    let mut cfg = Config::default();
    cfg.apply_env(|k| (k == "CXP_CLICKHOUSE_PASSWORD_FILE").then(|| p.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.clickhouse.password.expose(), "from-a-file");

    let missing = dir.path().join("nope").to_string_lossy().to_string();
    let e = Config::default()
        .apply_env(|k| (k == "CXP_KAFKA_SASL_PASSWORD_FILE").then(|| missing.clone()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("CXP_KAFKA_SASL_PASSWORD_FILE") && e.contains("nope"),
        "{e}"
    );

    let e = Config::default()
        .apply_env(|k| {
            k.starts_with("CXP_SCHEMA_REGISTRY_PASSWORD")
                .then(|| p.clone())
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("both set"), "{e}");
    assert!(!e.contains("from-a-file"), "{e}");
}

/// A config error names the file, line and column but never prints a secret, whatever the
/// mistake: a misspelled password key, an unterminated string, a password of the wrong type.
#[test]
fn parse_errors_name_the_place_and_never_the_secret() {
    const PLANTED: &str = "Planted-S3cret-9731";
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (what, text, want) in [
        (
            "a misspelled key",
            format!("[clickhouse]\nurl = \"http://h:8123\"\npasswrd = \"{PLANTED}\"\n"),
            "passwrd",
        ),
        (
            "an unterminated string",
            format!("[clickhouse]\npassword = \"{PLANTED}\n"),
            "line 2",
        ),
        (
            "a password of the wrong type",
            "[kafka]\nsasl_password = 97310042\n".to_string(),
            "line 2",
        ),
        (
            // Found by the config fuzzer: the quoted text went out as the "key".
            "a key and its value run together",
            format!("[clickhouse]\npassword\"{PLANTED}\"x = \"v\"\n"),
            "line 2",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let msg = Config::load(Some(&path))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("bad.toml") && msg.contains(want),
            "{what}: {msg}"
        );
        for secret in [PLANTED, "97310042"] {
            assert!(!msg.contains(secret), "{what}: the secret reached {msg}");
        }
    }
}

#[test]
fn a_type_error_names_the_key_and_never_the_value() {
    let text = "[kafka]\nbrokers = \"b:1\"\n[clickhouse]\npassword = [\"pl4nted1\"]\n";
    let err = match Config::parse(std::path::Path::new("c.toml"), text) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a list is not a password"),
    };
    assert!(
        err.contains("line 4") && err.contains("(clickhouse.password)"),
        "{err}"
    );
    assert!(!err.contains("pl4nted1"), "{err}");
    let mut errs = Vec::new();
    super::http_url("clickhouse.url", "ch://u:pl4nted2@h", &mut errs);
    assert_eq!(
        errs,
        ["clickhouse.url must start with http:// or https:// (it starts with \"ch\")"]
    );
}

#[test]
fn the_consumer_group_protocol_is_refused_naming_the_key() {
    let mut c = Config::default();
    c.kafka
        .consumer
        .insert("group.protocol".into(), "consumer".into());
    let e = c
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("kafka.consumer.\"group.protocol\"") && e.contains("group_instance_id"),
        "{e}"
    );
    c.kafka
        .consumer
        .insert("group.protocol".into(), "classic".into());
    assert!(c.validate().is_ok());
}
