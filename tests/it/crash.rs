//! The crash and rebalance battery, against real Apache Kafka, the real registry and the real
//! ClickHouse server. Each test ends with a bounded run that closes every window, then compares
//! all window rows (FINAL), survey and contact facts and dead letters with the independent
//! oracle by exact integer equality.
//!
//! `CXP_CRASH_KILLS` sets how many SIGKILLs the kill test deals (default 5; the long variant
//! is `CXP_CRASH_KILLS=20 scripts/test.sh sigkill`); `CXP_CRASH_SEED` replays the kill
//! points of an earlier run (every run prints its seed).

use crate::common::check::check;
use crate::common::harness::{self, all_visible, assignments, events, setup, Opts};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// xorshift64*: the kill points come from a printed seed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_and_restart_equals_the_oracle() {
    let kills = env_u64("CXP_CRASH_KILLS").unwrap_or(5).max(1);
    let seed = env_u64("CXP_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    eprintln!("sigkill: {kills} kills, CXP_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    // A short checkpoint interval, so kills fall before, during and after checkpoints.
    let s = setup(
        "sigkill",
        Opts {
            checkpoint_interval: "2s",
            ..Opts::default()
        },
    )
    .await;
    let evs = events(60_000, 13);
    // Input keeps arriving through every crash and restart, spread over about 8 s per kill
    // (a restart waits out the dead member's 6 s session before partitions move).
    let pace = Duration::from_millis(kills * 8_000);
    let kill_loop = async {
        for k in 0..kills {
            let started = Instant::now();
            let child = s.pipeline(&["run"], None);
            // Even kills: any time in the first 10 s (while joining, restoring or running).
            // Odd kills: once this instance has written rows, plus up to 4 s: mid-batch,
            // mid-insert, between rows and checkpoint, or mid-commit.
            let delay = if k % 2 == 0 {
                Duration::from_millis(rng.below(10_000))
            } else {
                let before = s.contacts_written().await;
                s.wait_contacts(before, Duration::from_secs(300)).await;
                started.elapsed() + Duration::from_millis(rng.below(4_000))
            };
            tokio::time::sleep(delay.saturating_sub(started.elapsed())).await;
            harness::signal(&child, "-KILL");
            let code = harness::wait_exit(child, Duration::from_secs(30)).await;
            eprintln!(
                "kill {}: {:?} after start, exit {code}, checkpoints hold {} offsets",
                k + 1,
                started.elapsed(),
                s.checkpointed().await,
            );
        }
    };
    let (landed, ()) = tokio::join!(s.produce_paced(&evs, pace), kill_loop);
    eprintln!("sigkill: all {} events produced", landed.len());
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_joins_then_first_is_killed_equals_the_oracle() {
    let s = setup(
        "twoinst",
        Opts {
            checkpoint_interval: "2s",
            ..Opts::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let evs = events(60_000, 17);
    let third = evs.len() / 3;
    let mut landed = s.produce(&evs[..third]).await;
    let a = s.pipeline(&["run"], Some(&log_a));
    s.wait_contacts(2_000, Duration::from_secs(300)).await;
    landed.extend(s.produce(&evs[third..2 * third]).await);
    // B joins the same group mid-stream: the group rebalances and partitions move to it.
    let b = s.pipeline(&["run"], Some(&log_b));
    let start = Instant::now();
    while assignments(&log_b) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "B was never assigned partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shared = assignments(&log_b);
    assert!(
        shared < 4,
        "B shares the partitions with A at first ({shared} assigned)"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    harness::signal(&a, "-KILL");
    harness::wait_exit(a, Duration::from_secs(30)).await;
    landed.extend(s.produce(&evs[2 * third..]).await);
    // B alone must take A's partitions over and consume everything.
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    let b_total = assignments(&log_b);
    assert!(
        b_total >= shared + 4,
        "B took every partition over after A died ({shared} then {b_total} assignments)"
    );
    harness::signal(&b, "-TERM");
    assert_eq!(harness::wait_exit(b, Duration::from_secs(120)).await, 0);
    eprintln!(
        "two instances: A logged {} assignments, B {shared} while sharing and {b_total} in all",
        assignments(&log_a)
    );
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// A broker of this test's own (the shared one serves the other tests), stopped on drop.
struct Broker {
    dir: std::path::PathBuf,
    port: u16,
}

impl Broker {
    fn script(&self, args: &[&str]) {
        let ok = Command::new(harness::services_script())
            .args(args)
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "services.sh {args:?}");
    }
    fn up(&self) {
        let (port, cport) = (self.port.to_string(), (self.port + 1).to_string());
        self.script(&["kafka-up", &self.dir.to_string_lossy(), &port, &cport]);
    }
    fn kill(&self) {
        self.script(&["kafka-down", &self.dir.to_string_lossy(), "KILL"]);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(harness::services_script())
            .args(["kafka-down", &self.dir.to_string_lossy()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_stream_equals_the_oracle() {
    let services = crate::common::env("CXP_SERVICES_DIR");
    let broker = Broker {
        dir: Path::new(&services).join(crate::common::unique("broker")),
        port: 19192,
    };
    broker.up();
    let brokers = format!("127.0.0.1:{}", broker.port);
    let s = setup(
        "brokerkill",
        Opts {
            brokers: Some(&brokers),
            checkpoint_interval: "2s",
            ..Opts::default()
        },
    )
    .await;
    let evs = events(50_000, 19);
    let half = evs.len() / 2;
    let mut landed = s.produce(&evs[..half]).await;
    // librdkafka logs every refused reconnect while the broker is down: keep them in a file.
    let log = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let mut child = s.pipeline(&["run"], Some(log.path()));
    s.wait_contacts(2_000, Duration::from_secs(300)).await;
    let t = Instant::now();
    broker.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.up();
    eprintln!(
        "broker down for {:?} (SIGKILL, then restart on the same data)",
        t.elapsed()
    );
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the pipeline rides out a broker outage"
    );
    landed.extend(s.produce(&evs[half..]).await);
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    harness::signal(&child, "-TERM");
    assert_eq!(harness::wait_exit(child, Duration::from_secs(120)).await, 0);
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    eprintln!(
        "the pipeline logged {} lines during the outage, e.g. {:?}",
        text.lines().count(),
        text.lines().find(|l| l.contains("brokers are down"))
    );
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// Commits `offset(topic, partition)` for the test's group from outside it (the group is
/// empty: its last member left cleanly), as an operator resetting offsets would.
fn commit_for_group(s: &harness::Setup, offset: impl Fn(&str, i32) -> i64) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", &s.db)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in [&s.topics.0, &s.topics.1] {
        for p in 0..harness::PARTITIONS {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset(offset(topic, p)))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    c.commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("commit for the group: {e}"));
}

/// Committed offsets and checkpoints disagree, as after a lost asynchronous commit (behind)
/// or an offset reset by hand (ahead): on partitions 0 and 1 the group's offsets are
/// rewound to the start, on 2 and 3 moved to the end. The checkpoint must win either way:
/// nothing folded twice, nothing skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_behind_or_ahead_of_the_checkpoint_change_nothing() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let s = setup("offsets", Opts::default()).await;
    let evs = events(50_000, 31);
    let split = evs.len() * 6 / 10;
    // The rest arrives before the offsets move, so "the end" on partitions 2 and 3 is past
    // every checkpoint.
    let landed = s.sigterm_mid_stream(&evs, split).await;
    let probe: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    commit_for_group(&s, |topic, p| {
        if p < 2 {
            0
        } else {
            probe
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, high)| high)
                .unwrap_or_else(|e| panic!("{e}"))
        }
    });
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// The one crash point inside the checkpoint path that a SIGKILL from outside rarely hits:
/// after a checkpoint's new bases are stored and before the marks that name them. The fault
/// hook (`CXP_FAULT_CHECKPOINT=abort_after_bases`) aborts the process there; the next owner
/// must restore from the previous mark's base, replay the input since, and end exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_between_bases_and_marks_equals_the_oracle() {
    let s = setup(
        "abortbases",
        Opts {
            checkpoint_interval: "1s",
            ..Opts::default()
        },
    )
    .await;
    let evs = events(24_000, 23);
    let third = evs.len() / 3;
    let mut landed = s.produce(&evs[..third]).await;
    s.run_to_end().await;
    // Every routine checkpoint now writes bases: the fault is certain to fire mid-stream.
    s.edit_config(
        "checkpoint_interval = \"1s\"",
        "checkpoint_interval = \"1s\"\nsnapshot_max_age = \"1s\"",
    );
    for part in [&evs[third..2 * third], &evs[2 * third..]] {
        landed.extend(s.produce(part).await);
        let child = s.pipeline_env(
            &["run"],
            None,
            &[("CXP_FAULT_CHECKPOINT", "abort_after_bases")],
        );
        let code = harness::wait_exit(child, Duration::from_secs(180)).await;
        assert_ne!(code, 0, "the fault hook aborted the run");
    }
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}
