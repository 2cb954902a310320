//! The end-to-end harness shared by the integration tests: one isolated setup per test (its
//! own topics, consumer group, registry subjects and ClickHouse database), the pipeline binary
//! as a child process, and the comparison of everything it wrote with the independent oracle.

use super::oracle::{self, Landed, Params};
use super::registry::TestEncoder;
use cx_pipeline::codec::WireFormat;
use cx_pipeline::generator::{generate, GenConfig, GenEvent};
use std::collections::{BTreeMap, HashMap, HashSet};
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
}

pub struct Opts<'a> {
    /// Another broker than the shared one (the broker-restart test runs its own).
    pub brokers: Option<&'a str>,
    pub checkpoint_interval: &'a str,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            brokers: None,
            checkpoint_interval: "10s",
        }
    }
}

pub async fn setup(name: &str, opts: Opts<'_>) -> Setup {
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
idle_timeout = "1h"
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
grouping_sets = [[], ["region"], ["team"], ["channel", "bucket"], ["agent"], ["product", "tier"]]
[clickhouse]
url = "{ch}"
database = "{id}"
[sink]
period = "1s"
max_rows = 20000
checkpoint_interval = "{}"
[metrics]
listen = ""
"#,
        topics.0, topics.1, topics.2, opts.checkpoint_interval
    );
    std::fs::write(config.path(), toml).unwrap_or_else(|e| panic!("{e}"));
    Setup {
        brokers,
        ch,
        db: id,
        topics,
        config,
        encoder,
    }
}

pub fn params() -> Params {
    Params {
        ooo_ms: 30_000,
        lateness_ms: 300_000,
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

/// `scripts/services.sh`, for tests that start, kill and restart a broker of their own.
pub fn services_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh")
}

/// Compares ClickHouse and the dead-letter topic with the oracle over the events that the
/// consumer can see (`landed[i]` is None for an event produced in an aborted transaction):
/// every window row read with FINAL, the survey facts, and the dead letters by reason.
pub async fn check(s: &Setup, evs: &[GenEvent], landed: &[Option<(i32, i64)>]) {
    assert_eq!(evs.len(), landed.len());
    let l: Vec<Landed<'_>> = evs
        .iter()
        .zip(landed)
        .filter_map(|(g, at)| {
            at.map(|(partition, offset)| Landed {
                partition,
                offset,
                g,
            })
        })
        .collect();
    let exp = oracle::expected(&l, &params());
    let rows = super::window_rows(&s.ch, &s.db).await;
    let mut got: BTreeMap<oracle::Key, oracle::Sums> = BTreeMap::new();
    for r in &rows {
        assert_eq!(r.is_final, 1, "bounded run leaves no open window: {r:?}");
        let key = (
            r.window_size_s,
            r.window_start,
            r.grouping.clone(),
            [
                r.region.clone(),
                r.channel.clone(),
                r.team.clone(),
                r.agent.clone(),
                r.product.clone(),
                r.tier.clone(),
                r.bucket.clone(),
            ],
            r.source_partition,
        );
        let sums = [
            r.responses,
            r.nps_n,
            r.promoters,
            r.passives,
            r.detractors,
            r.csat_n,
            r.csat_satisfied,
            r.csat_sum,
            r.attributed,
            r.contacts,
            r.handle_ms,
            r.talk_ms,
            r.hold_ms,
            r.wrap_ms,
        ];
        assert!(
            got.insert(key.clone(), sums).is_none(),
            "duplicate row after FINAL: {key:?}"
        );
    }
    let missing: Vec<_> = exp
        .rows
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !exp.rows.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    let wrong: Vec<_> = exp
        .rows
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .map(|(k, v)| (k, v, got.get(k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "rows differ (key, expected, got): {wrong:#?}"
    );
    assert!(
        exp.rows.len() > 5_000,
        "a meaningful number of rows: {}",
        exp.rows.len()
    );

    // Dead letters: exactly the visible malformed messages plus the too-late ones, each once.
    let dl = super::read_dead_letters(&s.brokers, &s.topics.2);
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for (reason, topic, p, o) in &dl {
        if seen.insert((topic.clone(), *p, *o)) {
            *by_reason.entry(reason.clone()).or_default() += 1;
        }
    }
    let mut want: HashMap<String, usize> = HashMap::new();
    for (g, _) in evs.iter().zip(landed).filter(|(_, at)| at.is_some()) {
        if let Some(m) = g.malformed {
            *want.entry(m.reason().to_string()).or_default() += 1;
        }
    }
    if exp.too_late > 0 {
        want.insert("too_late".into(), exp.too_late);
    }
    assert_eq!(by_reason, want, "dead letters by reason");
    assert!(
        exp.too_late > 5,
        "the data set exercises lateness: {}",
        exp.too_late
    );
    // Facts: one row per accepted survey (column 0 of the overall daily rows counts them)
    // and per accepted contact (column 9).
    let facts = |col: usize| -> u64 {
        exp.rows
            .iter()
            .filter(|(k, _)| k.0 == 86_400 && k.2.is_empty())
            .map(|(_, v)| v[col])
            .sum()
    };
    let surveys = super::count(
        &s.ch,
        &format!("SELECT count() FROM {}.survey_facts FINAL", s.db),
    )
    .await;
    assert_eq!(surveys, facts(0), "survey facts");
    let contacts = super::count(
        &s.ch,
        &format!("SELECT count() FROM {}.interaction_facts FINAL", s.db),
    )
    .await;
    assert_eq!(contacts, facts(9), "contact facts");
    eprintln!(
        "checked {} window rows, {} dead letters ({} distinct), {} too late, {} surveys, {} contacts",
        rows.len(),
        dl.len(),
        seen.len(),
        exp.too_late,
        surveys,
        contacts
    );
}

/// `landed` for a run where every event is visible.
pub fn all_visible(landed: &[(i32, i64)]) -> Vec<Option<(i32, i64)>> {
    landed.iter().copied().map(Some).collect()
}
