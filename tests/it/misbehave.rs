//! Data that misbehaves, against real Kafka and ClickHouse, each case ending in the exact
//! comparison with the independent oracle (docs/SEMANTICS.md): a producer stall delivered
//! with two pause patterns, bad timestamps, repeated deliveries, a backfill a day behind,
//! a bounded run followed by a live one, a restart with changed settings, and durations
//! out of range.

use crate::common::check::{check, compare_rows, expected_for, observed_rows};
use crate::common::harness::{all_visible, events, setup, signal, wait_exit, Opts, Setup};
use cx_pipeline::generator::GenEvent;
use cx_pipeline::model::{Event, Stream};
use std::time::Duration;

const DAY: i64 = 86_400_000;

/// A copy of `g` under a new id (so it is not a repeat), at event time `t`.
fn retimed(g: &GenEvent, tag: &str, t: i64) -> GenEvent {
    let mut c = g.clone();
    match &mut c.event {
        Event::Survey(s) => {
            s.response_id = format!("{}-{tag}", s.response_id);
            s.submitted_at_ms = t;
        }
        Event::Interaction(i) => {
            i.interaction_id = format!("{}-{tag}", i.interaction_id);
            i.started_at_ms = t.saturating_sub(60_000);
            i.ended_at_ms = t;
        }
    }
    c
}

fn time_of(g: &GenEvent) -> i64 {
    match &g.event {
        Event::Survey(s) => s.submitted_at_ms,
        Event::Interaction(i) => i.ended_at_ms,
    }
}

/// Inserts `extra[k]` right after `base[at[k]]`; returns the stream and which entries are
/// from `base`.
fn insert_after(base: &[GenEvent], extra: Vec<(usize, GenEvent)>) -> (Vec<GenEvent>, Vec<bool>) {
    let mut out = Vec::with_capacity(base.len() + extra.len());
    let mut is_base = Vec::new();
    let mut extra = extra;
    extra.sort_by_key(|(at, _)| *at);
    let mut it = extra.into_iter().peekable();
    for (n, g) in base.iter().enumerate() {
        out.push(g.clone());
        is_base.push(true);
        while let Some((_, e)) = it.next_if(|(at, _)| *at == n) {
            out.push(e);
            is_base.push(false);
        }
    }
    for (_, e) in it {
        out.push(e);
        is_base.push(false);
    }
    (out, is_base)
}

/// Rows must equal the oracle over the base events alone: the extra ones changed nothing.
async fn rows_equal_base_only(
    s: &Setup,
    all: &[GenEvent],
    is_base: &[bool],
    landed: &[(i32, i64)],
) {
    let base: Vec<GenEvent> = all
        .iter()
        .zip(is_base)
        .filter(|(_, b)| **b)
        .map(|(g, _)| g.clone())
        .collect();
    let at: Vec<Option<(i32, i64)>> = landed
        .iter()
        .zip(is_base)
        .filter(|(_, b)| **b)
        .map(|(l, _)| Some(*l))
        .collect();
    let exp = expected_for(s, &base, &at);
    compare_rows(&exp.rows, &observed_rows(s).await);
}

/// Runs `run` (live) until everything produced so far is checkpointed, then SIGTERM.
async fn live_until_checkpointed(s: &Setup, produced: u64) {
    let child = s.pipeline(&["run"], None);
    s.wait_checkpointed(produced, Duration::from_secs(300))
        .await;
    signal(&child, "-TERM");
    assert_eq!(wait_exit(child, Duration::from_secs(120)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_stall_gives_the_same_rows_as_a_steady_stream() {
    let evs = events(20_000, 21);
    let mut results = Vec::new();
    for stalled in [false, true] {
        let s = setup(if stalled { "stall_b" } else { "stall_a" }, Opts::default()).await;
        let child = s.pipeline(&["run"], None);
        let landed: Vec<(i32, i64)> = if stalled {
            // Surveys keep flowing while the contacts producer is stopped for most of the
            // stream, then delivers its backlog: each topic's order is unchanged.
            let cut = evs.len() / 4;
            let first: Vec<usize> = (0..evs.len())
                .filter(|&n| n < cut || evs[n].stream == Stream::Survey)
                .collect();
            let rest: Vec<usize> = (0..evs.len()).filter(|n| !first.contains(n)).collect();
            let pick = |ix: &[usize]| ix.iter().map(|&n| evs[n].clone()).collect::<Vec<_>>();
            let a = s.produce(&pick(&first)).await;
            s.wait_checkpointed(first.len() as u64, Duration::from_secs(300))
                .await;
            tokio::time::sleep(Duration::from_secs(12)).await;
            let b = s.produce(&pick(&rest)).await;
            let mut landed = vec![(0, 0); evs.len()];
            for (n, l) in first.iter().zip(a).chain(rest.iter().zip(b)) {
                landed[*n] = l;
            }
            landed
        } else {
            s.produce(&evs).await
        };
        s.wait_checkpointed(evs.len() as u64, Duration::from_secs(300))
            .await;
        signal(&child, "-TERM");
        assert_eq!(wait_exit(child, Duration::from_secs(120)).await, 0);
        s.run_to_end().await;
        check(&s, &evs, &all_visible(&landed)).await;
        results.push((observed_rows(&s).await, landed));
    }
    assert_eq!(
        results[0].1, results[1].1,
        "each topic's order was the same"
    );
    assert!(
        results[0].0 == results[1].0,
        "identical rows whatever the pauses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timestamps_are_rejected_and_change_nothing_else() {
    let s = setup("fuzz_time", Opts::default()).await;
    let base = events(20_000, 22);
    let bad = [
        ("y2100", 4_102_444_800_000),             // a skewed client clock
        ("micros", 1_793_491_200_000_i64 * 1000), // microseconds as milliseconds
        ("negative", -DAY),
        ("zero", 0),
        ("y1990", 631_152_000_000), // before ingest.min_event_time
        ("max", i64::MAX),
        ("min", i64::MIN),
    ];
    let mut extra = Vec::new();
    for (k, n) in (100..base.len()).step_by(450).enumerate() {
        let (tag, t) = bad[k % bad.len()];
        if base[n].malformed.is_none() {
            extra.push((n, retimed(&base[n], tag, t)));
        }
    }
    let (all, is_base) = insert_after(&base, extra);
    let landed = s.produce(&all).await;
    s.run_to_end().await;
    check(&s, &all, &all_visible(&landed)).await;
    rows_equal_base_only(&s, &all, &is_base, &landed).await;
    let exp = expected_for(&s, &all, &all_visible(&landed));
    assert!(exp
        .rejected
        .get("event_time_out_of_range")
        .is_some_and(|&n| n >= 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_deliveries_count_once_and_the_first_wins() {
    let s = setup("duplicates", Opts::default()).await;
    let base = events(20_000, 23);
    let mut extra = Vec::new();
    for n in (50..base.len() - 400).step_by(37) {
        let g = &base[n];
        if g.malformed.is_some() {
            continue;
        }
        let mut again = g.clone();
        // Every third repeat carries different content (a changed answer, a changed
        // duration); the first delivery still counts.
        if n % 3 == 0 {
            match &mut again.event {
                Event::Survey(x) => x.nps_score = Some(x.nps_score.map_or(0, |v| 10 - v)),
                Event::Interaction(i) => i.talk_ms += 1000,
            }
        }
        extra.push((n + 1 + n % 300, again)); // re-sent soon after, within lateness
    }
    let (all, _) = insert_after(&base, extra);
    let landed = s.produce(&all).await;
    s.run_to_end().await;
    check(&s, &all, &all_visible(&landed)).await;
    let exp = expected_for(&s, &all, &all_visible(&landed));
    assert!(
        exp.rejected.get("duplicate").is_some_and(|&n| n > 400),
        "{:?}",
        exp.rejected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_a_day_behind_is_counted_in_its_own_windows() {
    let s = setup(
        "backfill",
        Opts {
            late_horizon_h: 7 * 24,
            ..Opts::default()
        },
    )
    .await;
    let stream = events(20_000, 24);
    // Yesterday's phone surveys, imported in one batch after the live stream.
    let backfill: Vec<GenEvent> = stream
        .iter()
        .filter(|g| g.stream == Stream::Survey && g.malformed.is_none())
        .step_by(5)
        .map(|g| retimed(g, "import", time_of(g) - DAY))
        .collect();
    let n_backfill = backfill.len();
    let all: Vec<GenEvent> = stream.iter().cloned().chain(backfill).collect();
    let landed = s.produce(&all).await;
    s.run_to_end().await;
    check(&s, &all, &all_visible(&landed)).await;
    let exp = expected_for(&s, &all, &all_visible(&landed));
    assert!(!exp.rejected.contains_key("too_late"), "{:?}", exp.rejected);
    assert!(n_backfill > 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_run_then_a_live_run_equals_one_run() {
    let s = setup("backfill_then_live", Opts::default()).await;
    let evs = events(30_000, 25);
    let split = evs.len() / 2;
    let mut landed = s.produce(&evs[..split]).await;
    s.run_to_end().await;
    landed.extend(s.produce(&evs[split..]).await);
    live_until_checkpointed(&s, evs.len() as u64).await;
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_changed_windows_or_groupings_refuses_to_start() {
    let s = setup("changed_config", Opts::default()).await;
    let evs = events(5_000, 26);
    s.produce(&evs).await;
    s.run_to_end().await;
    let rows = crate::common::count(
        &s.ch,
        &format!("SELECT count() FROM {}.window_aggregates", s.db),
    )
    .await;
    let original = std::fs::read_to_string(s.config.path()).unwrap_or_default();
    for (from, to, key) in [
        (
            r#"grouping_sets = [[], ["region"], ["team"]"#,
            r#"grouping_sets = [[], ["team"], ["region"]"#,
            "window.grouping_sets was [], [region], [team]",
        ),
        (
            r#"sizes = ["1m", "1h", "1d"]"#,
            r#"sizes = ["5m", "1h", "1d"]"#,
            "window.sizes was 60s, 3600s, 86400s and is now 300s, 3600s, 86400s",
        ),
    ] {
        assert!(original.contains(from));
        std::fs::write(s.config.path(), original.replace(from, to))
            .unwrap_or_else(|e| panic!("{e}"));
        let out = tokio::task::spawn_blocking({
            let path = s.config.path().to_path_buf();
            move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_cx-pipeline"))
                    .arg("--config")
                    .arg(path)
                    .args(["run", "--until-end"])
                    .env("RUST_LOG", "warn")
                    .env_remove("CXP_KAFKA_BROKERS")
                    .env_remove("CXP_CLICKHOUSE_URL")
                    .env_remove("CXP_SCHEMA_REGISTRY_URL")
                    .output()
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a changed {key:?} must refuse to start"
        );
        assert!(err.contains(key) && err.contains("kafka.state_id"), "{err}");
    }
    let after = crate::common::count(
        &s.ch,
        &format!("SELECT count() FROM {}.window_aggregates", s.db),
    )
    .await;
    assert_eq!(rows, after, "the refused runs wrote nothing");
    // Back to the original settings, the state carries on.
    std::fs::write(s.config.path(), original).unwrap_or_else(|e| panic!("{e}"));
    s.run_to_end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_out_of_range_are_rejected_and_change_nothing_else() {
    let s = setup("durations", Opts::default()).await;
    let base = events(20_000, 27);
    let mut extra = Vec::new();
    for (k, n) in (100..base.len()).step_by(300).enumerate() {
        let g = &base[n];
        if g.stream != Stream::Interaction || g.malformed.is_some() {
            continue;
        }
        let mut c = retimed(g, "dur", time_of(g));
        if let Event::Interaction(i) = &mut c.event {
            match k % 3 {
                0 => i.talk_ms = i.talk_ms.max(1) * 1_000_000, // nanoseconds
                1 => i.hold_ms = i64::MAX,
                _ => i.wrap_ms = 86_400_001,
            }
        }
        extra.push((n, c));
    }
    let (all, is_base) = insert_after(&base, extra);
    let landed = s.produce(&all).await;
    s.run_to_end().await;
    check(&s, &all, &all_visible(&landed)).await;
    rows_equal_base_only(&s, &all, &is_base, &landed).await;
}
