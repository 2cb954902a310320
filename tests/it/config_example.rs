//! The shipped example config must parse, validate and match the built-in defaults where it
//! says it shows them.

#[test]
fn example_config_is_valid_and_shows_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pipeline.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let cfg: cx_pipeline::config::Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let v = cfg.validate().unwrap_or_else(|e| panic!("{e}"));
    let d = cx_pipeline::config::Config::default()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.settings.window.sizes_ms(), d.settings.window.sizes_ms());
    assert_eq!(v.settings.window.groupings, d.settings.window.groupings);
    assert_eq!(v.settings.join.lookback_ms, d.settings.join.lookback_ms);
    assert_eq!(v.settings.join.max_wait_ms, d.settings.join.max_wait_ms);
    assert_eq!(
        cfg.kafka.survey_topic,
        cx_pipeline::config::Config::default().kafka.survey_topic
    );
    let (a, b) = (&v.detector.params, &d.detector.params);
    assert_eq!(
        (
            a.budget_per_week,
            a.baseline_days,
            a.gap_days,
            a.min_history_days
        ),
        (
            b.budget_per_week,
            b.baseline_days,
            b.gap_days,
            b.min_history_days
        )
    );
    assert_eq!(
        (
            a.max_delta,
            a.baseline_margin_se,
            a.resolve_share,
            a.min_active_hours,
            a.digest_fdr
        ),
        (
            b.max_delta,
            b.baseline_margin_se,
            b.resolve_share,
            b.min_active_hours,
            b.digest_fdr
        )
    );
    assert_eq!(v.detector.nesting, d.detector.nesting);
}

#[test]
fn bad_detector_settings_are_named() {
    let text = "[detector]\nbudget_per_week = 0\nbaseline = \"36h\"\ndelta = { agnet = 20 }\nresolve_share = 2\nnesting = [[\"agent\", \"agent\"]]\nalertmanager_url = \"alertmanager:9093\"\n\
                nested_budget_share = 1.5\npage_groupings = [\"overall\", \"teem\"]\naccept_after = \"12h\"\nmax_page_age = \"0s\"\n\
                mode = \"quiet\"\ngrafana_url = \"grafana:3000\"\n";
    let cfg: cx_pipeline::config::Config = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    let err = cfg.validate().map(|_| ()).unwrap_err().to_string();
    for key in [
        "detector.budget_per_week",
        "detector.baseline",
        "detector.delta.agnet",
        "detector.resolve_share",
        "detector.nesting[0]",
        "detector.alertmanager_url",
        "detector.nested_budget_share",
        "detector.page_groupings: \"teem\"",
        "detector.accept_after",
        "detector.max_page_age",
        "detector.mode",
        "detector.grafana_url",
    ] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
}

#[test]
fn validate_subcommand_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[window]\nsizes = [\"1m\", \"often\"]\n[sink]\nmax_rows = 0\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cx-pipeline"))
        .args(["--config", bad.to_str().unwrap_or_default(), "validate"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("window.sizes[1]") && err.contains("sink.max_rows"),
        "{err}"
    );
    std::fs::write(&bad, "[kafka]\nbrokerz = \"x\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cx-pipeline"))
        .args(["--config", bad.to_str().unwrap_or_default(), "validate"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("brokerz"));
}
