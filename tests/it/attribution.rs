//! Attribution that converges (docs/SEMANTICS.md, "Join" and "Settled, revised, final"),
//! against real Apache Kafka, the real registry and the real ClickHouse server: backfills a
//! day and six days behind the live stream, a backfill crashed into with SIGKILL, ticket
//! ids reused across customers, and a `--final` run. Every window row, fact and dead letter
//! must equal the independent oracle; each test prints the attributed share the documented
//! rule gives against the share the arrival rule it replaced gave (the oracle with
//! `revise_horizon` = out_of_orderness + allowed_lateness, which is that rule).

use crate::common::check::{check, expected_with};
use crate::common::harness::{self, all_visible, events, params_for, setup, Opts, Setup};
use crate::common::oracle::{Expected, Params};
use cx_pipeline::codec::WireFormat;
use cx_pipeline::generator::{generate, GenConfig, GenEvent};
use cx_pipeline::model::Event;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

/// A helpdesk export re-sent after an outage: surveys and their contacts dated `behind`
/// before the live stream's start, with ids of their own.
fn backfill(count: usize, seed: u64, behind_ms: i64) -> Vec<GenEvent> {
    let cfg = GenConfig {
        seed,
        count,
        start_ms: GenConfig::default().start_ms - behind_ms,
        malformed_share: 0.0,
        late_share: 0.0,
        ..GenConfig::default()
    };
    let mut evs = generate(&cfg, WireFormat::Confluent);
    for g in &mut evs {
        match &mut g.event {
            Event::Survey(s) => {
                s.response_id.insert(0, 'b');
                if let Some(t) = &mut s.ticket_id {
                    t.insert(0, 'b');
                }
            }
            Event::Interaction(i) => {
                i.interaction_id.insert(0, 'b');
                i.ticket_id.insert(0, 'b');
            }
        }
    }
    evs
}

/// (attributed, settled) surveys in an expectation.
fn share(e: &Expected) -> (usize, usize) {
    let settled = e.surveys.values().filter(|(_, s)| *s);
    let all: Vec<_> = settled.collect();
    let attributed = all.iter().filter(|(a, _)| a.is_some()).count();
    (attributed, all.len())
}

fn arrival_rule(p: Params) -> Params {
    Params {
        revise_ms: p.ooo_ms + p.lateness_ms,
        ..p
    }
}

/// Checks everything against the oracle and prints the attributed shares of `evs` (and
/// of the events whose ids start with `of`), now and under the arrival rule.
async fn check_and_report(
    name: &str,
    s: &Setup,
    evs: &[GenEvent],
    landed: &[(i32, i64)],
    p: Params,
    of: &str,
) {
    let visible = all_visible(landed);
    let before = expected_with(&arrival_rule(params_for(s.late_horizon_h)), evs, &visible);
    let after = expected_with(&p, evs, &visible);
    check_with(s, evs, &visible, &p).await;
    let sub = |e: &Expected| {
        let v: Vec<_> = e
            .surveys
            .iter()
            .filter(|(id, (_, settled))| id.starts_with(of) && *settled)
            .collect();
        (v.iter().filter(|(_, (a, _))| a.is_some()).count(), v.len())
    };
    let (a0, n0) = share(&before);
    let (a1, n1) = share(&after);
    let (b0, m0) = sub(&before);
    let (b1, m1) = sub(&after);
    eprintln!(
        "{name}: attributed {a1} of {n1} settled surveys (arrival rule: {a0} of {n0}); \
         of the {of:?} ones {b1} of {m1} (arrival rule: {b0} of {m0})"
    );
    assert!(
        b1 > b0,
        "the documented rule credits more of them than the arrival rule"
    );
}

/// `check` with explicit oracle parameters (a --final run, another late horizon).
async fn check_with(s: &Setup, evs: &[GenEvent], visible: &[Option<(i32, i64)>], p: &Params) {
    let exp = expected_with(p, evs, visible);
    let got = crate::common::check::observed_rows(s).await;
    crate::common::check::compare_rows(&exp.rows, &got);
    crate::common::check::check_dead_letters(s, &exp);
    crate::common::check::check_facts(s, &exp).await;
}

async fn backfilled(name: &str, behind_ms: i64, horizon_h: i64) {
    let s = setup(
        name,
        Opts {
            late_horizon_h: horizon_h,
            ..Opts::default()
        },
    )
    .await;
    let mut evs = events(20_000, 31);
    evs.extend(backfill(3_000, 32, behind_ms));
    // Live first, the backfill after it (its surveys and contacts interleaved as exported).
    let landed = s.produce(&evs).await;
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
    check_and_report(name, &s, &evs, &landed, params_for(horizon_h), "b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_a_day_behind_is_credited_to_its_teams() {
    backfilled("backfill1d", DAY_MS, 48).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_six_days_behind_is_credited_to_its_teams() {
    backfilled("backfill6d", 6 * DAY_MS, 7 * 24).await;
}

/// The backfill arrives while the job runs and is killed twice mid-way: the restarts
/// replay from checkpoints taken in the middle of revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_through_sigkills_equals_the_oracle() {
    let s = setup(
        "backfillkill",
        Opts {
            late_horizon_h: 48,
            checkpoint_interval: "2s",
            ..Opts::default()
        },
    )
    .await;
    let live = events(20_000, 33);
    let back = backfill(4_000, 34, DAY_MS);
    let mut landed = s.produce(&live).await;
    for (k, chunk) in back.chunks(back.len() / 2 + 1).enumerate() {
        let child = s.pipeline(&["run"], None);
        // Everything so far checkpointed, then the chunk arrives and the kill falls while
        // its contacts re-credit settled surveys, before or after the next checkpoint.
        s.wait_checkpointed(landed.len() as u64, Duration::from_secs(300))
            .await;
        let before = s.contacts_written().await;
        landed.extend(s.produce(chunk).await);
        s.wait_contacts(before + 200, Duration::from_secs(300))
            .await;
        tokio::time::sleep(Duration::from_millis(1_500 * k as u64 + 300)).await;
        harness::signal(&child, "-KILL");
        harness::wait_exit(child, Duration::from_secs(30)).await;
        eprintln!(
            "backfill kill {}: checkpoints hold {} of {} offsets",
            k + 1,
            s.checkpointed().await,
            landed.len()
        );
    }
    let evs: Vec<GenEvent> = live.into_iter().chain(back).collect();
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

/// Two helpdesks with overlapping ticket numbers: every ticket id is shared by many
/// customers. A survey is only ever credited through its own customer's contacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_ticket_ids_credit_only_the_surveys_own_customer() {
    let s = setup("reusedtickets", Opts::default()).await;
    let mut evs = events(30_000, 35);
    let fold = |t: &mut String| {
        let n: u64 = t.trim_start_matches('t').parse().unwrap_or(0);
        *t = format!("t{}", n % 200);
    };
    for g in &mut evs {
        match &mut g.event {
            Event::Survey(s) => {
                if let Some(t) = &mut s.ticket_id {
                    fold(t);
                }
            }
            Event::Interaction(i) => fold(&mut i.ticket_id),
        }
    }
    let landed = s.produce(&evs).await;
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
    let other = crate::common::count(
        &s.ch,
        &format!(
            "SELECT count() FROM {}.survey_facts FINAL WHERE matched_by = 'other_customer'",
            s.db
        ),
    )
    .await;
    let before = credited_elsewhere(&evs);
    let attributed = crate::common::count(
        &s.ch,
        &format!(
            "SELECT count() FROM {}.survey_facts FINAL WHERE attributed = 1",
            s.db
        ),
    )
    .await;
    eprintln!(
        "reused ticket ids: {attributed} surveys attributed, each to its own customer; {other} \
         whose ticket had other customers' contacts only; matching by ticket id alone would \
         credit {before} surveys to another customer's contact"
    );
    assert!(other > 0, "the data set exercises other_customer");
    assert!(before > 0, "the data set has colliding tickets in range");
}

/// Surveys whose latest contact by ticket id alone, in `[t - 7d, t + 10m]`, belongs to
/// another customer: what matching without the customer check would do (arrival and
/// lateness aside).
fn credited_elsewhere(evs: &[GenEvent]) -> usize {
    let contacts: Vec<_> = evs
        .iter()
        .filter(|g| g.malformed.is_none())
        .filter_map(|g| match &g.event {
            Event::Interaction(i) => Some(i),
            Event::Survey(_) => None,
        })
        .collect();
    let mut by_ticket: std::collections::HashMap<&str, Vec<_>> = Default::default();
    for i in &contacts {
        by_ticket.entry(i.ticket_id.as_str()).or_default().push(*i);
    }
    evs.iter()
        .filter(|g| g.malformed.is_none())
        .filter_map(|g| match &g.event {
            Event::Survey(s) => Some(s),
            Event::Interaction(_) => None,
        })
        .filter(|s| {
            let Some(list) = s.ticket_id.as_deref().and_then(|t| by_ticket.get(t)) else {
                return false;
            };
            let (lo, hi) = (s.submitted_at_ms - 7 * DAY_MS, s.submitted_at_ms + 600_000);
            list.iter()
                .filter(|i| i.ended_at_ms >= lo && i.ended_at_ms <= hi)
                .max_by(|a, b| {
                    (a.ended_at_ms, &a.interaction_id).cmp(&(b.ended_at_ms, &b.interaction_id))
                })
                .is_some_and(|i| i.customer_id != s.customer_id)
        })
        .count()
}

/// `run --until-end --final`: everything settles and closes (no provisional fact, no open
/// row), and a later run on the same state refuses to start, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_run_settles_everything_and_closes_the_state() {
    let s = setup("finalrun", Opts::default()).await;
    let evs = events(20_000, 36);
    let landed = s.produce(&evs).await;
    let code = harness::wait_exit(
        s.pipeline(&["run", "--until-end", "--final"], None),
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(code, 0, "final run exit code");
    let p = Params {
        final_run: true,
        ..params_for(s.late_horizon_h)
    };
    check_with(&s, &evs, &all_visible(&landed), &p).await;
    let bounded = expected_with(&params_for(s.late_horizon_h), &evs, &all_visible(&landed));
    let exp = expected_with(&p, &evs, &all_visible(&landed));
    eprintln!(
        "final run: {} of {} surveys settled (a plain bounded run: {} of {}); attributed {} (plain: {})",
        exp.surveys.values().filter(|x| x.1).count(),
        exp.surveys.len(),
        bounded.surveys.values().filter(|x| x.1).count(),
        bounded.surveys.len(),
        share(&exp).0,
        share(&bounded).0,
    );
    let open = crate::common::count(
        &s.ch,
        &format!(
            "SELECT count() FROM {}.window_aggregates FINAL WHERE is_final = 0",
            s.db
        ),
    )
    .await;
    assert_eq!(open, 0, "no open window row after a final run");
    let refused = s.run_refused(&[]).await;
    assert!(
        refused.contains("--final"),
        "refusal names the final run: {refused}"
    );
    // A repeated final run over the same complete input is accepted and changes nothing.
    let code = harness::wait_exit(
        s.pipeline(&["run", "--until-end", "--final"], None),
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(code, 0, "a repeated final run");
    check_with(&s, &evs, &all_visible(&landed), &p).await;
}

/// Tables of the layout before revisions (`survey_facts` versioned by `is_final`, no
/// `sign` on `window_aggregates`) are migrated at startup: the facts table rebuilt with its
/// rows copied, the column added; the results then equal the oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_the_layout_before_revisions_are_migrated() {
    let s = setup("oldlayout", Opts::default()).await;
    let db = &s.db;
    let facts = include_str!("../../src/sink/sql/002_survey_facts.sql")
        .replace(
            ",\n    revision             UInt32,\n    version              UInt32",
            "",
        )
        .replace(
            "ReplacingMergeTree(version)",
            "ReplacingMergeTree(is_final)",
        );
    let windows = include_str!("../../src/sink/sql/004_window_aggregates.sql")
        .replace(",\n    sign             Int8 DEFAULT 1", "");
    assert!(
        !facts.contains("version              UInt32")
            && !windows.contains("sign             Int8"),
        "old layouts"
    );
    let old_row = format!(
        "INSERT INTO {db}.survey_facts (response_id, submitted_at, is_final) VALUES ('old-fact', 1, 1)"
    );
    for sql in [
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        facts.replace("{db}", db),
        windows.replace("{db}", db),
        old_row,
    ] {
        crate::common::execute(&s.ch, &sql).await;
    }
    let evs = events(12_000, 37);
    let landed = s.produce(&evs).await;
    s.run_to_end().await;
    let copied = crate::common::count(
        &s.ch,
        &format!(
            "SELECT count() FROM {db}.survey_facts FINAL WHERE response_id = 'old-fact' AND version = 1 AND revision = 0"
        ),
    )
    .await;
    assert_eq!(
        copied, 1,
        "the old table's rows are copied, versioned by is_final"
    );
    let signs = crate::common::count(
        &s.ch,
        &format!("SELECT count() FROM system.columns WHERE database = '{db}' AND table = 'window_aggregates' AND name = 'sign'"),
    )
    .await;
    assert_eq!(signs, 1, "sign added");
    crate::common::execute(
        &s.ch,
        &format!("ALTER TABLE {db}.survey_facts DELETE WHERE response_id = 'old-fact'"),
    )
    .await;
    let start = std::time::Instant::now();
    while crate::common::count(
        &s.ch,
        &format!("SELECT count() FROM {db}.survey_facts WHERE response_id = 'old-fact'"),
    )
    .await
        > 0
    {
        assert!(start.elapsed() < Duration::from_secs(60), "the delete ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check(&s, &evs, &all_visible(&landed)).await;
}
