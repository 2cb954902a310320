//! Ownership under infrastructure faults, against real Apache Kafka, the real registry and
//! the real ClickHouse server: a stalled instance woken after another took its partitions
//! over (a zombie), and instances joining and leaving every few seconds (a rebalance storm).
//! Each ends with a bounded run and the exact comparison with the independent oracle; the
//! zombie test also checks the business counters of both instances add up exactly.

use crate::common::check::{check, expected_for};
use crate::common::harness::{all_visible, assignments, events, setup, signal, wait_exit, Opts};
use std::process::Child;
use std::time::{Duration, Instant};

async fn counts(addr: &str) -> (u64, u64) {
    let text = crate::common::http_get(addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{addr}: {text:.200}");
    (
        crate::common::metric_sum(&text, "cx_contacts_total"),
        crate::common::metric_sum(&text, "cx_survey_responses_total"),
    )
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_woken_after_a_takeover_changes_nothing() {
    let (addr_a, addr_b) = (
        crate::common::free_local_addr(),
        crate::common::free_local_addr(),
    );
    let s = setup(
        "zombie",
        Opts {
            checkpoint_interval: "2s",
            ..Opts::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let evs = events(40_000, 23);
    let (q1, q2) = (evs.len() / 4, evs.len() / 2);
    let mut landed = s.produce(&evs[..q1]).await;
    let a = s.pipeline_env(
        &["run"],
        Some(&log_a),
        &[("CXP_METRICS_LISTEN", addr_a.as_str())],
    );
    s.wait_contacts(3_000, Duration::from_secs(300)).await;
    landed.extend(s.produce(&evs[q1..q2]).await);
    // A stalls (as in a long GC pause, a hung disk, a frozen VM) mid-stream, with rows in
    // flight and state past its last checkpoint. Its session (6 s) expires; B takes over.
    signal(&a, "-STOP");
    let stopped = Instant::now();
    let b = s.pipeline_env(
        &["run"],
        Some(&log_b),
        &[("CXP_METRICS_LISTEN", addr_b.as_str())],
    );
    wait_for(
        "B owns all four partitions",
        Duration::from_secs(120),
        || assignments(&log_b) >= 4,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a_before = assignments(&log_a);
    signal(&a, "-CONT");
    eprintln!("A was stopped for {:?}", stopped.elapsed());
    // A wakes believing it owns its partitions, finds out, rejoins; both run on the rest.
    landed.extend(s.produce(&evs[q2..]).await);
    wait_for("A noticed and rejoined", Duration::from_secs(120), || {
        assignments(&log_a) > a_before
    })
    .await;
    s.wait_checkpointed(evs.len() as u64, Duration::from_secs(300))
        .await;
    let text_a = std::fs::read_to_string(&log_a).unwrap_or_default();
    let fenced = text_a.matches("partition fenced").count();
    let lost = text_a.contains("assignment lost");
    eprintln!(
        "A after waking: {fenced} partitions fenced, assignment lost: {lost}, assignments {a_before} -> {}",
        assignments(&log_a)
    );
    assert!(
        fenced > 0 || lost,
        "A noticed it no longer owned its partitions"
    );

    // Every settled fact counted exactly once across both instances.
    let exp = expected_for(&s, &evs, &all_visible(&landed));
    let settled = exp.surveys.values().filter(|(_, fin)| *fin).count() as u64;
    let want = (exp.contacts as u64, settled);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = (0, 0);
    while Instant::now() < deadline {
        let (ca, ra) = counts(&addr_a).await;
        let (cb, rb) = counts(&addr_b).await;
        got = (ca + cb, ra + rb);
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(got, want, "business counters of A and B together");
    for c in [a, b] {
        signal(&c, "-TERM");
        assert_eq!(wait_exit(c, Duration::from_secs(120)).await, 0);
    }
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// xorshift64*: the storm's schedule comes from a printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_storm_changes_nothing() {
    let s = setup(
        "storm",
        Opts {
            checkpoint_interval: "2s",
            ..Opts::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let seed = std::env::var("CXP_STORM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| crate::common::harness::now_ms() as u64 | 1);
    eprintln!("storm seed {seed} (CXP_STORM_SEED replays it)");
    let mut rng = Rng(seed);
    let evs = events(60_000, 29);
    let steady_log = dir.path().join("steady.log");
    let steady = s.pipeline(&["run"], Some(&steady_log));
    let storm = async {
        let mut others: Vec<(Child, std::path::PathBuf, Instant)> = Vec::new();
        let (mut joins, mut leaves, mut kills) = (0, 0, 0);
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(1_000 + rng.below(2_000))).await;
            if others.is_empty() || (others.len() < 3 && rng.below(2) == 0) {
                n += 1;
                let log = dir.path().join(format!("member{n}.log"));
                others.push((s.pipeline(&["run"], Some(&log)), log, Instant::now()));
                joins += 1;
            } else {
                let (c, log, born) = others.swap_remove(rng.below(others.len() as u64) as usize);
                if rng.below(4) == 0 {
                    signal(&c, "-KILL");
                    wait_exit(c, Duration::from_secs(30)).await;
                    kills += 1;
                } else {
                    signal(&c, "-TERM");
                    let code = wait_exit(c, Duration::from_secs(120)).await;
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    assert_eq!(
                        code,
                        0,
                        "a member leaving on SIGTERM {:?} after it started exits 0: {text}",
                        born.elapsed()
                    );
                    leaves += 1;
                }
            }
        }
        for (c, log, born) in others {
            // A process signalled in its first milliseconds, before it could install its
            // handlers, just dies; that is not what this test is about.
            tokio::time::sleep(Duration::from_secs(2).saturating_sub(born.elapsed())).await;
            signal(&c, "-TERM");
            let code = wait_exit(c, Duration::from_secs(120)).await;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert_eq!(code, 0, "a member leaving on SIGTERM exits 0: {text}");
            leaves += 1;
        }
        (joins, leaves, kills)
    };
    let (landed, (joins, leaves, kills)) =
        tokio::join!(s.produce_paced(&evs, Duration::from_secs(30)), storm);
    s.wait_checkpointed(evs.len() as u64, Duration::from_secs(300))
        .await;
    let rebalances = assignments(&steady_log);
    eprintln!(
        "storm: {joins} joins, {leaves} graceful leaves, {kills} kills; the steady member was assigned {rebalances} times"
    );
    assert!(joins >= 5, "a storm: {joins} joins");
    signal(&steady, "-TERM");
    assert_eq!(wait_exit(steady, Duration::from_secs(120)).await, 0);
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// Ownership race: an instance whose first claim is stuck (a ClickHouse brownout, injected
/// with `CXP_FAULT_CLAIM_DELAY_MS`) past its own expulsion reads the live owner's claim and
/// writes a newer epoch, fencing the owner the group assigned the partitions to, then dies
/// (`CXP_FAULT_CLAIM_ABORT`) without ever rejoining, so no rebalance comes to the rescue.
/// The owner must claim its partitions again rather than drop them (they would go unread
/// for good), and the result must stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_claim_does_not_leave_the_live_owners_partitions_unread() {
    let s = setup(
        "lateclaim",
        Opts {
            checkpoint_interval: "1s",
            ..Opts::default()
        },
    )
    .await;
    // A member that does not poll for 8 s is expelled; the stuck claim lasts 14 s.
    s.edit_config(
        "\"heartbeat.interval.ms\" = \"1000\"",
        "\"heartbeat.interval.ms\" = \"1000\"\n\"max.poll.interval.ms\" = \"8000\"",
    );
    let evs = events(24_000, 31);
    let half = evs.len() / 2;
    let mut landed = s.produce(&evs[..half]).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let owner_log = dir.path().join("owner.log");
    let owner = s.pipeline(&["run"], Some(&owner_log));
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
        .await;
    let late_log = dir.path().join("late.log");
    let late = s.pipeline_env(
        &["run"],
        Some(&late_log),
        &[
            ("CXP_FAULT_CLAIM_DELAY_MS", "14000"),
            ("CXP_FAULT_CLAIM_ABORT", "1"),
        ],
    );
    // Input keeps coming, so the owner checkpoints (and meets the newer epoch) all along.
    landed.extend(s.produce_paced(&evs[half..], Duration::from_secs(30)).await);
    let code = wait_exit(late, Duration::from_secs(60)).await;
    assert_ne!(code, 0, "the late claimer aborted after its claim");
    s.wait_checkpointed(landed.len() as u64, Duration::from_secs(240))
        .await;
    let text = std::fs::read_to_string(&owner_log).unwrap_or_default();
    assert!(
        text.contains("claiming again"),
        "the owner was fenced by the late claim and claimed again: {}",
        text.lines()
            .filter(|l| l.contains("fenced") || l.contains("assigned"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    signal(&owner, "-TERM");
    assert_eq!(wait_exit(owner, Duration::from_secs(120)).await, 0);
    // The late claimer read the stored epochs before the owner took its partitions back, so
    // both wanted the same epoch: at most one may ever hold a (partition, epoch).
    let late_text = std::fs::read_to_string(&late_log).unwrap_or_default();
    let (mine, theirs) = (claims_in(&text), claims_in(&late_text));
    assert!(!theirs.is_empty(), "the late claimer claimed: {late_text}");
    let both: Vec<_> = mine.intersection(&theirs).collect();
    assert!(
        both.is_empty(),
        "(partition, epoch) held by two owners: {both:?}"
    );
    assert!(
        late_text.contains("a rival claimed these partitions at the same time"),
        "the late claim met the owner's claim at its epoch and yielded"
    );
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// The (partition, epoch) pairs a job's log says it claimed.
fn claims_in(log: &str) -> std::collections::BTreeSet<(u64, u64)> {
    use crate::common::harness::log_number;
    log.lines()
        .filter(|l| l.contains("claim won"))
        .filter_map(|l| Some((log_number(l, "partition")?, log_number(l, "epoch")?)))
        .collect()
}

/// A rebalance can leave a member with no partitions; claiming nothing must succeed without
/// a query (it once sent ClickHouse `WHERE ... AND ()`, failing the member's SIGTERM exit in
/// a storm), and claiming afterwards still works (real ClickHouse).
#[tokio::test(flavor = "multi_thread")]
async fn a_member_assigned_nothing_claims_nothing_and_fails_nothing() {
    let s = setup("claimnone", Opts::default()).await;
    let text = format!(
        "[clickhouse]\nurl = \"{}\"\ndatabase = \"{}\"\n",
        s.ch, s.db
    );
    let cfg: cx_pipeline::config::Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let v = cfg.validate().unwrap_or_else(|e| panic!("{e}"));
    let metrics = cx_pipeline::metrics::DetectorMetrics::new();
    let sink = cx_pipeline::sink::ClickHouseSink::connect(&v.clickhouse, metrics.sink.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let none = cx_pipeline::delivery::claims::take(&sink, "claimnone", 7, &[])
        .await
        .unwrap_or_else(|e| panic!("claiming nothing: {e}"));
    assert!(none.epochs.is_empty());
    let one = cx_pipeline::delivery::claims::take(&sink, "claimnone", 7, &[3])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one.epochs.get(&3), Some(&1));
}
