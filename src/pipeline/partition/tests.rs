//! The partition state's clocks and the rules that make its results a function of each
//! topic's order: unit tests, and a property test over interleavings, batch boundaries,
//! checkpoints and a bounded run followed by a live one.

use super::*;
use crate::delivery::format as checkpoint;
use crate::join::{AttributionPolicy, JoinConfig};
use crate::model::Event;
use crate::pipeline::limits::Limits;
use crate::pipeline::Core;
use crate::window::{Grouping, WindowConfig};
use std::collections::BTreeMap;

const MIN: i64 = 60_000;

pub(crate) fn settings() -> Settings {
    let g = |d: &[&str]| {
        Grouping::new(&d.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    Settings {
        join: JoinConfig {
            policy: AttributionPolicy::Last,
            lookback_ms: 60 * MIN,
            max_wait_ms: 10 * MIN,
            max_contacts: 100_000,
            max_pending: 100_000,
            revise_ms: 30 * MIN,
            floor_lag_ms: 5 * MIN,
            max_revisable: 100_000,
            max_revisions: 16,
        },
        window: WindowConfig::new(vec![MIN, 60 * MIN], vec![g(&[]), g(&["team"])]),
        out_of_orderness_ms: MIN,
        allowed_lateness_ms: 4 * MIN,
        late_horizon_ms: 30 * MIN,
        limits: Limits::default(),
    }
}

pub(crate) fn survey(id: &str, customer: &str, ticket: Option<&str>, at: i64, nps: u8) -> Survey {
    Survey {
        response_id: id.into(),
        customer_id: customer.into(),
        ticket_id: ticket.map(Into::into),
        submitted_at_ms: at,
        survey_channel: "EMAIL".into(),
        nps_score: Some(nps),
        csat_score: Some(4),
        comment: None,
        region: Some("EU".into()),
        product: None,
        customer_tier: None,
    }
}

pub(crate) fn contact(
    id: &str,
    ticket: &str,
    customer: &str,
    team: &str,
    ended: i64,
) -> Interaction {
    Interaction {
        interaction_id: id.into(),
        ticket_id: ticket.into(),
        customer_id: customer.into(),
        agent_id: format!("agent-{team}"),
        team: team.into(),
        channel: "PHONE".into(),
        bucket: "POST_SALES".into(),
        category: "refunds".into(),
        product: None,
        started_at_ms: ended - MIN,
        ended_at_ms: ended,
        talk_ms: 1000,
        hold_ms: 10,
        wrap_ms: 1,
        resolved: true,
    }
}

#[test]
fn clocks_classify_on_time_late_and_too_late_by_their_own_stream_only() {
    let st = settings();
    let mut ps = PartitionState::new(0);
    let mut out = Outputs::default();
    let i = |id: &str, t| contact(id, "t", "c", "a", t);
    assert_eq!(
        ps.on_interaction(i("i1", 100 * MIN), 0, b"1", &st, &mut out),
        Ok(Accepted::OnTime)
    );
    // floor = 100 - 1 - 4 = 95 min; horizon = 100 - 30 = 70 min.
    assert_eq!(ps.clocks[1].floor_ms, 95 * MIN);
    assert_eq!(
        ps.on_interaction(i("i2", 96 * MIN), 1, b"2", &st, &mut out),
        Ok(Accepted::OnTime)
    );
    assert_eq!(
        ps.on_interaction(i("i3", 80 * MIN), 2, b"3", &st, &mut out),
        Ok(Accepted::Late)
    );
    assert_eq!(
        ps.on_interaction(i("i4", 69 * MIN), 3, b"4", &st, &mut out),
        Err(Rejected::TooLate {
            event_ms: 69 * MIN,
            horizon_ms: 70 * MIN
        })
    );
    // Nothing rejected or late moved the clock; the offsets all did.
    assert_eq!(ps.clocks[1].max_event_ms, Some(100 * MIN));
    assert_eq!(ps.clocks[1].floor_ms, 95 * MIN);
    assert_eq!(ps.clocks[1].next_offset, 4);
    // The other stream's clock is untouched: a survey far behind the contacts is on time.
    assert_eq!(ps.clocks[0].floor_ms, i64::MIN);
    assert_eq!(
        ps.on_survey(survey("s1", "c", None, 10 * MIN, 9), 0, b"s", &st, &mut out),
        Ok(Accepted::OnTime)
    );
}

#[test]
fn a_repeated_id_is_rejected_and_moves_nothing() {
    let st = settings();
    let mut ps = PartitionState::new(0);
    let mut out = Outputs::default();
    let s = survey("s1", "c", None, 100 * MIN, 9);
    assert!(ps.on_survey(s.clone(), 0, b"a", &st, &mut out).is_ok());
    let mut later = s.clone();
    later.submitted_at_ms = 200 * MIN;
    assert_eq!(
        ps.on_survey(later, 1, b"b", &st, &mut out),
        Err(Rejected::Duplicate(Repeat::Differs))
    );
    assert_eq!(ps.clocks[0].max_event_ms, Some(100 * MIN));
    assert_eq!(
        ps.on_survey(s, 2, b"a", &st, &mut out),
        Err(Rejected::Duplicate(Repeat::Identical))
    );
}

#[test]
fn a_late_contact_is_written_as_correction_rows_of_its_own() {
    let st = settings();
    let mut ps = PartitionState::new(3);
    let mut out = Outputs::default();
    ps.on_interaction(
        contact("i1", "t", "c", "a", 100 * MIN),
        0,
        b"1",
        &st,
        &mut out,
    )
    .ok();
    ps.on_interaction(
        contact("i2", "t", "c", "a", 80 * MIN),
        7,
        b"2",
        &st,
        &mut out,
    )
    .ok();
    // 2 sizes x 2 groupings, final at once, revision naming offset 7 of the contacts.
    assert_eq!(out.windows.len(), 4);
    let rev = correction_id(Stream::Interaction, 7);
    assert!(out
        .windows
        .iter()
        .all(|(p, u)| *p == 3 && u.is_final && u.revision == rev && u.partial.contacts == 1));
    assert_eq!(out.contacts.len(), 2, "both are facts");
}

#[test]
fn a_stalled_contact_stream_loses_nothing_and_revises_surveys_shown_early() {
    let st = settings();
    let mut ps = PartitionState::new(0);
    let mut out = Outputs::default();
    // Surveys keep coming for an hour; the contacts they rate arrive after all of them.
    for k in 0..60 {
        let s = survey(&format!("s{k}"), "c", Some("t"), k * MIN, 10);
        assert!(ps.on_survey(s, k, b"s", &st, &mut out).is_ok());
        ps.advance(&st, &mut out);
    }
    assert!(
        out.surveys.is_empty(),
        "nothing settles while contacts are quiet"
    );
    ps.drain(&st, &mut out);
    let unattributed: u64 = out
        .windows
        .iter()
        .filter(|(_, u)| {
            u.key.size_ms == 60 * MIN && u.key.grouping == 1 && &*u.key.dims[2] == "unattributed"
        })
        .map(|(_, u)| u.partial.responses)
        .sum();
    assert_eq!(
        unattributed, 60,
        "shown at once, provisionally unattributed"
    );
    out = Outputs::default();
    ps.on_interaction(contact("i1", "t", "c", "a", 0), 0, b"i", &st, &mut out)
        .ok();
    ps.on_interaction(
        contact("i2", "t", "c", "b", 200 * MIN),
        1,
        b"j",
        &st,
        &mut out,
    )
    .ok();
    ps.advance(&st, &mut out);
    assert_eq!(out.surveys.len(), 60);
    assert!(out.surveys.iter().all(
        |f| f.is_final && f.resolved.attribution.as_ref().map(|a| a.team.as_str()) == Some("a")
    ));
    assert!(out.windows.iter().all(|(_, u)| u.revision == 0));
    let team = |u: &WindowUpdate| u.key.dims[2].to_string();
    let finals: BTreeMap<(i64, i64, String), u64> = out
        .windows
        .iter()
        .filter(|(_, u)| u.is_final && u.key.grouping == 1)
        .map(|(_, u)| ((u.key.size_ms, u.key.end_ms, team(u)), u.partial.responses))
        .collect();
    // The survey floor (54 min) closes the minutes up to it.
    assert_eq!(finals.get(&(MIN, 10 * MIN, "a".into())), Some(&1));
    assert_eq!(
        finals.get(&(MIN, 10 * MIN, "unattributed".into())),
        Some(&0),
        "the provisional row is emptied, not left behind"
    );
}

// ---- the property: same input, any interleaving, batching, checkpoints, bounded+live ----

pub(crate) type Row = (i64, i64, u8, Vec<String>, i32);

/// What ClickHouse holds after ReplacingMergeTree: per (key, revision) the highest version
/// (the last written among equals); then summed over revisions, empty rows dropped.
#[derive(Default)]
pub(crate) struct Sink {
    rows: BTreeMap<(Row, u64), (u64, Partial, i8)>,
    /// response id -> (version, attributed interaction id).
    pub(crate) facts: BTreeMap<String, (u32, Option<String>)>,
}

impl Sink {
    pub(crate) fn take(&mut self, out: Outputs) {
        for (p, u) in out.windows {
            let k = (
                u.key.end_ms,
                u.key.size_ms,
                u.key.grouping,
                u.key.dims.iter().map(|d| d.to_string()).collect(),
                p,
            );
            let e = self
                .rows
                .entry((k, u.revision))
                .or_insert((0, Partial::default(), 1));
            if u.version >= e.0 {
                *e = (u.version, u.partial, u.sign);
            }
        }
        for f in out.surveys {
            let id = f.resolved.survey.response_id.clone();
            let a = f.resolved.attribution.map(|a| a.interaction_id);
            let version = if f.is_final { f.revision + 1 } else { 0 };
            let e = self.facts.entry(id).or_insert((0, None));
            if version >= e.0 {
                *e = (version, a);
            }
        }
    }

    /// Rows summed over revisions with their sign, as a board reads them.
    pub(crate) fn summed(&self) -> BTreeMap<Row, Partial> {
        let mut m: BTreeMap<Row, (Partial, Partial)> = BTreeMap::new();
        for ((k, _), (_, p, sign)) in &self.rows {
            let e = m.entry(k.clone()).or_default();
            if *sign < 0 {
                e.1.merge(p);
            } else {
                e.0.merge(p);
            }
        }
        m.into_iter()
            .map(|(k, (pos, neg))| {
                let net = pos
                    .checked_sub(&neg)
                    .unwrap_or_else(|| panic!("a row sums below zero: {k:?}"));
                (k, net)
            })
            .filter(|(_, p)| !p.is_zero())
            .collect()
    }
}

/// Feeds `order` (indices into the two topics, each topic's own order preserved),
/// advancing at the given points, round-tripping checkpoints and ending a bounded run
/// part-way (finish, checkpoint, new core) when asked. `crash`: (at, len): a checkpoint is
/// taken at `at`, processing goes on for `len` more events writing rows, then the process
/// "dies" and the rest is replayed from that checkpoint in another interleaving (contacts
/// first).
pub(crate) fn run(
    topics: &[Vec<Event>; 2],
    order: &[Stream],
    advance_at: &[usize],
    checkpoint_at: &[usize],
    bounded_stop: Option<usize>,
    crash: Option<(usize, usize)>,
) -> Sink {
    let st = settings();
    let mut core = Core::new(st.clone());
    let mut sink = Sink::default();
    let mut next = [0usize; 2];
    let mut saved: Option<(Vec<u8>, [usize; 2])> = None;
    for (n, &s) in order.iter().enumerate() {
        if crash.is_some_and(|(at, len)| n == at + len) && saved.is_some() {
            break;
        }
        if crash.is_some_and(|(at, _)| at == n) {
            let bytes = core.partition(0).map(|ps| {
                checkpoint::encode(ps, &st, &Default::default()).unwrap_or_else(|e| panic!("{e}"))
            });
            saved = Some((bytes.unwrap_or_default(), next));
        }
        let k = next[s as usize];
        next[s as usize] += 1;
        let e = &topics[s as usize][k];
        let _ = core.process(0, k as i64, e.clone(), format!("{e:?}").as_bytes());
        if advance_at.contains(&n) {
            core.advance(0);
            sink.take(core.take_outputs());
        }
        if checkpoint_at.contains(&n) || bounded_stop == Some(n) {
            if bounded_stop == Some(n) {
                core.finish_all();
            }
            sink.take(core.take_outputs());
            let ps = core
                .partition(0)
                .map(|ps| checkpoint::encode(ps, &st, &Default::default()));
            let mut fresh = Core::new(st.clone());
            if let Some(Ok(bytes)) = ps {
                match checkpoint::decode(&bytes, &st, &Default::default()) {
                    Ok(state) => fresh.restore(state.value),
                    Err(e) => panic!("{e}"),
                }
            }
            core = fresh;
        }
    }
    if let Some((bytes, at)) = saved {
        core.advance(0);
        sink.take(core.take_outputs());
        core = Core::new(st.clone());
        if !bytes.is_empty() {
            core.restore(
                checkpoint::decode(&bytes, &st, &Default::default())
                    .unwrap_or_else(|e| panic!("{e}"))
                    .value,
            );
        }
        for s in [Stream::Interaction, Stream::Survey] {
            for (k, e) in topics[s as usize].iter().enumerate().skip(at[s as usize]) {
                let _ = core.process(0, k as i64, e.clone(), format!("{e:?}").as_bytes());
                core.advance(0);
                sink.take(core.take_outputs());
            }
        }
    }
    core.advance(0);
    core.finish_all();
    sink.take(core.take_outputs());
    sink
}

mod any_interleaving {
    use super::*;
    use proptest::prelude::*;

    fn topics(
        surveys: &[(u8, Option<u8>, i64, u8)],
        contacts: &[(u8, u8, u8, i64)],
    ) -> [Vec<Event>; 2] {
        let s = surveys
            .iter()
            .enumerate()
            .map(|(n, &(cu, t, at, nps))| {
                let ticket = t.map(|t| format!("t{t}"));
                // A few repeats: ids are reused every 13 surveys.
                Event::Survey(survey(
                    &format!("s{}", n % 13),
                    &format!("c{cu}"),
                    ticket.as_deref(),
                    at * 10_000,
                    nps,
                ))
            })
            .collect();
        let c = contacts
            .iter()
            .enumerate()
            .map(|(n, &(cu, t, team, at))| {
                Event::Interaction(contact(
                    &format!("i{n}"),
                    &format!("t{t}"),
                    &format!("c{cu}"),
                    &format!("team{team}"),
                    at * 10_000,
                ))
            })
            .collect();
        [s, c]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn final_rows_and_facts_do_not_depend_on_timing(
            surveys in proptest::collection::vec((0u8..4, proptest::option::of(0u8..5), 0i64..600, 0u8..=10), 1..40),
            contacts in proptest::collection::vec((0u8..4, 0u8..5, 0u8..3, 0i64..600), 1..40),
            picks in proptest::collection::vec(any::<bool>(), 80),
            advance_at in proptest::collection::vec(0usize..80, 0..10),
            checkpoint_at in proptest::collection::vec(0usize..80, 0..3),
            bounded_stop in proptest::option::of(0usize..80),
            crash in proptest::option::of((0usize..80, 0usize..40)),
        ) {
            let t = topics(&surveys, &contacts);
            // Reference: all surveys first, then all contacts, one advance at the end.
            let reference: Vec<Stream> = std::iter::repeat_n(Stream::Survey, t[0].len())
                .chain(std::iter::repeat_n(Stream::Interaction, t[1].len()))
                .collect();
            // Another interleaving of the same two sequences.
            let (mut a, mut b) = (t[0].len(), t[1].len());
            let mut order = Vec::new();
            let mut i = 0;
            while a + b > 0 {
                let take_survey = b == 0 || (a > 0 && picks[i % picks.len()]);
                i += 1;
                if take_survey { a -= 1; order.push(Stream::Survey) } else { b -= 1; order.push(Stream::Interaction) }
            }
            let one = run(&t, &reference, &[], &[], None, None);
            let other = run(&t, &order, &advance_at, &checkpoint_at, bounded_stop, crash);
            prop_assert_eq!(one.summed(), other.summed());
            prop_assert_eq!(&one.facts, &other.facts);
        }
    }
}
