//! The end-to-end harness shared by the integration tests: one isolated setup per test (its
//! own topics, consumer group, registry subjects and ClickHouse database), the pipeline binary
//! as a child process, and the comparison of everything it wrote with the independent oracle.

use super::oracle::Params;
use super::registry::TestEncoder;
use cx_pipeline::codec::WireFormat;
use cx_pipeline::generator::{generate, GenConfig, GenEvent};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PARTITIONS: i32 = 4;

pub struct Setup {
    pub brokers: String,
    pub ch: String,
    pub db: String,
    pub topics: (String, String, String),
    pub config: tempfile::NamedTempFile,
    pub encoder: TestEncoder,
    pub late_horizon_h: i64,
}

pub struct Opts<'a> {
    /// Another broker than the shared one (the broker-restart test runs its own).
    pub brokers: Option<&'a str>,
    pub checkpoint_interval: &'a str,
    /// `window.late_horizon`, in hours.
    pub late_horizon_h: i64,
    /// `metrics.listen` ("" = off).
    pub metrics_listen: &'a str,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            brokers: None,
            checkpoint_interval: "10s",
            late_horizon_h: 2,
            metrics_listen: "",
        }
    }
}

pub async fn setup(name: &str, opts: Opts<'_>) -> Setup {
    started_ms();
    let brokers = opts
        .brokers
        .map_or_else(|| super::env("CXP_KAFKA_BROKERS"), str::to_string);
    let ch = super::env("CXP_CLICKHOUSE_URL");
    let registry = super::env("CXP_SCHEMA_REGISTRY_URL");
    let id = super::unique(name);
    let topics = (
        format!("{id}-surveys"),
        format!("{id}-interactions"),
        format!("{id}-dlq"),
    );
    super::create_topics(
        &brokers,
        &[
            (&topics.0, PARTITIONS),
            (&topics.1, PARTITIONS),
            (&topics.2, 1),
        ],
    )
    .await;
    let encoder = super::registry::register(&registry, &topics.0, &topics.1).await;
    let config = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    // A short session timeout so a killed instance's partitions move in seconds, as a
    // deployment would tune it; the broker allows it (group.min.session.timeout.ms).
    let toml = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{id}"
survey_topic = "{}"
interaction_topic = "{}"
dead_letter_topic = "{}"
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
[codec]
format = "confluent"
schema_registry_url = "{registry}"
[join]
attribution = "last"
lookback = "7d"
max_wait = "10m"
[window]
sizes = ["1m", "1h", "1d"]
out_of_orderness = "30s"
allowed_lateness = "5m"
late_horizon = "{}h"
grouping_sets = [[], ["region"], ["team"], ["channel", "bucket"], ["agent"], ["product", "tier"]]
[clickhouse]
url = "{ch}"
database = "{id}"
[sink]
period = "1s"
max_rows = 20000
checkpoint_interval = "{}"
[metrics]
listen = "{}"
"#,
        topics.0,
        topics.1,
        topics.2,
        opts.late_horizon_h,
        opts.checkpoint_interval,
        opts.metrics_listen
    );
    std::fs::write(config.path(), toml).unwrap_or_else(|e| panic!("{e}"));
    Setup {
        brokers,
        ch,
        db: id,
        topics,
        config,
        encoder,
        late_horizon_h: opts.late_horizon_h,
    }
}

/// When this test process started; every record it produces is stamped later.
pub fn started_ms() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(now_ms)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn params_for(late_horizon_h: i64) -> Params {
    Params {
        ooo_ms: 30_000,
        lateness_ms: 300_000,
        late_horizon_ms: late_horizon_h * 3_600_000,
        revise_ms: late_horizon_h * 3_600_000,
        final_run: false,
        min_event_ms: 946_684_800_000,
        max_future_skew_ms: 3_600_000,
        max_duration_ms: 86_400_000,
        record_ms: (started_ms(), now_ms()),
        max_wait_ms: 600_000,
        lookback_ms: 7 * 86_400_000,
        sizes_ms: vec![60_000, 3_600_000, 86_400_000],
        groupings: vec![
            vec![],
            vec!["region"],
            vec!["team"],
            vec!["channel", "bucket"],
            vec!["agent"],
            vec!["product", "tier"],
        ],
    }
}

pub fn events(count: usize, seed: u64) -> Vec<GenEvent> {
    let cfg = GenConfig {
        seed,
        count,
        malformed_share: 0.01,
        late_share: 0.004,
        ..GenConfig::default()
    };
    generate(&cfg, WireFormat::Confluent)
}

impl Setup {
    pub async fn produce(&self, evs: &[GenEvent]) -> Vec<(i32, i64)> {
        super::produce(
            &self.brokers,
            (&self.topics.0, &self.topics.1),
            evs,
            &self.encoder,
        )
        .await
    }

    /// Produces the events in slices spread evenly over `over`, a steady stream.
    pub async fn produce_paced(&self, evs: &[GenEvent], over: Duration) -> Vec<(i32, i64)> {
        let slices = (over.as_millis() / 100).max(1) as usize;
        let size = evs.len().div_ceil(slices).max(1);
        let producer = super::producer(&self.brokers, super::Partitioner::Librdkafka);
        let topics = (self.topics.0.as_str(), self.topics.1.as_str());
        let start = Instant::now();
        let mut landed = Vec::with_capacity(evs.len());
        for (n, slice) in evs.chunks(size).enumerate() {
            let due = over.mul_f64(n as f64 / slices as f64);
            tokio::time::sleep(due.saturating_sub(start.elapsed())).await;
            landed.extend(super::send_all(&producer, topics, slice, &self.encoder).await);
        }
        landed
    }

    /// Starts the pipeline binary; its log goes to `log` when given (RUST_LOG=info there).
    pub fn pipeline(&self, args: &[&str], log: Option<&Path>) -> Child {
        self.pipeline_env(args, log, &[])
    }

    /// Replaces `from` with `to` in the config file, which must contain `from`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let cfg = std::fs::read_to_string(self.config.path()).unwrap_or_default();
        assert!(cfg.contains(from), "config has {from:?}");
        std::fs::write(self.config.path(), cfg.replace(from, to)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A bounded run that must fail; returns its log (stderr).
    pub async fn run_refused(&self, env: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = dir.path().join("refused.log");
        let child = self.pipeline_env(&["run", "--until-end"], Some(&log), env);
        let code = wait_exit(child, Duration::from_secs(120)).await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_ne!(code, 0, "the run must refuse to start: {text}");
        text
    }

    /// As [`Setup::pipeline`], with extra environment variables (after the suite's CXP_*
    /// exports are removed).
    pub fn pipeline_env(&self, args: &[&str], log: Option<&Path>, env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cx-pipeline"));
        cmd.arg("--config").arg(self.config.path()).args(args);
        // The config file names this test's services; the suite's CXP_* exports would
        // override it (a broker of the test's own, say).
        for (k, _) in std::env::vars() {
            if k.starts_with("CXP_") {
                cmd.env_remove(k);
            }
        }
        match log {
            Some(path) => {
                let f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
                cmd.env("RUST_LOG", "info").stderr(Stdio::from(f));
            }
            None => {
                cmd.env(
                    "RUST_LOG",
                    std::env::var("CXP_TEST_LOG").unwrap_or_else(|_| "warn".into()),
                );
            }
        }
        // Last, so a test can raise the log level (RUST_LOG) too.
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn pipeline: {e}"))
    }

    /// A bounded run (`run --until-end`) that must exit 0.
    pub async fn run_to_end(&self) {
        let code = wait_exit(
            self.pipeline(&["run", "--until-end"], None),
            Duration::from_secs(600),
        )
        .await;
        assert_eq!(code, 0, "bounded run exit code");
    }

    /// Produces `evs[..split]`, runs the pipeline until it has written rows, stops it with
    /// SIGTERM (which must exit 0 after writing checkpoints), then produces the rest.
    /// Returns where every event landed.
    pub async fn sigterm_mid_stream(&self, evs: &[GenEvent], split: usize) -> Vec<(i32, i64)> {
        let mut landed = self.produce(&evs[..split]).await;
        let child = self.pipeline(&["run"], None);
        self.wait_contacts(3_000, Duration::from_secs(300)).await;
        signal(&child, "-TERM");
        let code = wait_exit(child, Duration::from_secs(120)).await;
        assert_eq!(code, 0, "SIGTERM exits 0 after flushing");
        let held = self.checkpointed().await;
        eprintln!("SIGTERM: stopped with {held} of {split} produced messages checkpointed");
        assert!(held > 0, "shutdown wrote checkpoints");
        landed.extend(self.produce(&evs[split..]).await);
        landed
    }

    /// Sum over partitions of both streams' checkpointed next offsets.
    pub async fn checkpointed(&self) -> u64 {
        if super::count(
            &self.ch,
            &format!(
                "SELECT count() FROM system.tables WHERE database = '{}' AND name = 'checkpoints'",
                self.db
            ),
        )
        .await
            == 0
        {
            return 0;
        }
        super::count(
            &self.ch,
            &format!(
                "SELECT toUInt64(sum(survey_offset + interaction_offset)) FROM {}.checkpoints FINAL",
                self.db
            ),
        )
        .await
    }

    /// Contacts written to ClickHouse so far (0 before the tables exist).
    pub async fn contacts_written(&self) -> u64 {
        if super::count(&self.ch, &format!("SELECT count() FROM system.tables WHERE database = '{}' AND name = 'interaction_facts'", self.db)).await == 0 {
            return 0;
        }
        super::count(
            &self.ch,
            &format!("SELECT count() FROM {}.interaction_facts", self.db),
        )
        .await
    }

    /// Waits until checkpoints cover `offsets` (the sum of every partition's next offset).
    pub async fn wait_checkpointed(&self, offsets: u64, limit: Duration) {
        let start = Instant::now();
        loop {
            let held = self.checkpointed().await;
            if held >= offsets {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "checkpoints cover {held} of {offsets} offsets after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until more than `n` contacts are in ClickHouse.
    pub async fn wait_contacts(&self, n: u64, limit: Duration) {
        let start = Instant::now();
        while self.contacts_written().await <= n {
            assert!(
                start.elapsed() < limit,
                "pipeline made no progress in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn signal(child: &Child, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .map(|s| s.success());
    assert_eq!(sent.ok(), Some(true), "kill {sig}");
}

/// Waits for the child to exit; kills it and fails after `limit`.
pub async fn wait_exit(mut c: Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = c.try_wait() {
            return st.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            panic!("pipeline did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many times the instance logging to `log` was assigned a partition.
pub fn assignments(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("partition assigned"))
        .count()
}

/// A `name=value` number of a pipeline log line (tracing's colours stripped).
pub fn log_number(line: &str, name: &str) -> Option<u64> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `scripts/services.sh`, for tests that start, kill and restart a broker of their own.
pub fn services_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh")
}

/// `landed` for a run where every event is visible.
pub fn all_visible(landed: &[(i32, i64)]) -> Vec<Option<(i32, i64)>> {
    landed.iter().copied().map(Some).collect()
}
