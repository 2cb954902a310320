//! Revisable attribution (docs/SEMANTICS.md, "Settled, revised, final"): a backfill whose
//! contacts arrive after the surveys they rate settled ends credited as if it had come on
//! time, whatever the order, batching and crash points.

use super::tests::{contact, run, survey, Sink};
use crate::model::{Event, Stream};

const MIN: i64 = 60_000;

/// Team rows of the 1-minute windows, summed as a board reads them: (minute, team) ->
/// (responses, attributed).
fn team_rows(sink: &Sink) -> Vec<(i64, String, u64, u64)> {
    sink.summed()
        .into_iter()
        .filter(|(k, _)| k.1 == MIN && k.2 == 1)
        .filter(|(_, p)| p.responses > 0)
        .map(|(k, p)| ((k.0 - k.1) / MIN, k.3[2].clone(), p.responses, p.attributed))
        .collect()
}

/// Live traffic at minutes 120-150 (each survey rates its own contact), then a backfill of
/// minutes 122-131 (within the 30-minute late horizon) whose contacts arrive after the
/// surveys they rate, and a late contact that re-credits the live survey at minute 130.
fn topics() -> [Vec<Event>; 2] {
    let mut s = Vec::new();
    let mut c = Vec::new();
    for m in 120..=150 {
        let t = format!("live{m}");
        c.push(Event::Interaction(contact(
            &format!("i{m}"),
            &t,
            "c1",
            "live",
            m * MIN,
        )));
        s.push(Event::Survey(survey(
            &format!("s{m}"),
            "c1",
            Some(&t),
            m * MIN + 1000,
            9,
        )));
    }
    for m in 122..132 {
        let t = format!("back{m}");
        s.push(Event::Survey(survey(
            &format!("b{m}"),
            "c2",
            Some(&t),
            m * MIN + 1000,
            3,
        )));
    }
    for m in 122..132 {
        let t = format!("back{m}");
        c.push(Event::Interaction(contact(
            &format!("j{m}"),
            &t,
            "c2",
            "backfill",
            m * MIN,
        )));
    }
    // A later contact of a live ticket, delivered late: the live survey at 130 moves.
    c.push(Event::Interaction(contact(
        "i130b",
        "live130",
        "c1",
        "late",
        130 * MIN + 500,
    )));
    [s, c]
}

fn order(t: &[Vec<Event>; 2], surveys_first: bool) -> Vec<Stream> {
    let (a, b) = (t[0].len(), t[1].len());
    let (x, y) = if surveys_first {
        (Stream::Survey, Stream::Interaction)
    } else {
        (Stream::Interaction, Stream::Survey)
    };
    let (nx, ny) = if surveys_first { (a, b) } else { (b, a) };
    std::iter::repeat_n(x, nx)
        .chain(std::iter::repeat_n(y, ny))
        .collect()
}

#[test]
fn a_backfill_and_a_late_contact_end_credited_as_the_data_says() {
    let t = topics();
    let reference = run(&t, &order(&t, true), &[], &[], None, None);
    let rows = team_rows(&reference);
    for m in 122..132 {
        assert!(
            rows.contains(&(m, "backfill".into(), 1, 1))
                && (m == 130 || rows.contains(&(m, "live".into(), 1, 1))),
            "minute {m} credited to the backfill's team: {rows:?}"
        );
    }
    assert!(rows.contains(&(130, "late".into(), 1, 1)), "{rows:?}");
    assert!(
        !rows.iter().any(|r| r.0 == 130 && r.1 == "live"),
        "{rows:?}"
    );
    // Settled (the contact floor, 145 min, passed t + 10 min): none unattributed.
    assert!(
        !rows.iter().any(|r| r.0 < 135 && r.1 == "unattributed"),
        "{rows:?}"
    );
    let backfilled = reference.facts.get("b125").cloned();
    assert_eq!(backfilled, Some((2, Some("j125".into()))), "revised once");
    let live = reference.facts.get("s130").cloned();
    assert_eq!(live, Some((2, Some("i130b".into()))), "revised once");
    // Other orders, batch boundaries, checkpoints and a crash give the same rows and facts.
    let n = t[0].len() + t[1].len();
    let interleaved: Vec<Stream> = (0..n)
        .map(|k| {
            if k % 2 == 0 {
                Stream::Interaction
            } else {
                Stream::Survey
            }
        })
        .collect();
    let interleaved = fit(&t, interleaved);
    for (o, adv, ck, crash) in [
        (order(&t, false), vec![5, 30, 40], vec![35], None),
        (
            interleaved.clone(),
            (0..n).collect(),
            vec![10, 45],
            Some((30, 8)),
        ),
        (interleaved, vec![44], vec![], Some((40, 4))),
    ] {
        let other = run(&t, &o, &adv, &ck, None, crash);
        assert_eq!(reference.summed(), other.summed());
        assert_eq!(reference.facts, other.facts);
    }
}

/// Makes an order valid for the topics' lengths (each stream taken as often as it has
/// events), keeping its pattern while both have events left.
fn fit(t: &[Vec<Event>; 2], pattern: Vec<Stream>) -> Vec<Stream> {
    let mut left = [t[0].len(), t[1].len()];
    let mut out = Vec::new();
    for s in pattern
        .into_iter()
        .chain(std::iter::repeat_n(Stream::Survey, left[0]))
    {
        let s = if left[s as usize] > 0 { s } else { other(s) };
        if left[s as usize] == 0 {
            break;
        }
        left[s as usize] -= 1;
        out.push(s);
    }
    while left[1] > 0 {
        left[1] -= 1;
        out.push(Stream::Interaction);
    }
    out
}

fn other(s: Stream) -> Stream {
    match s {
        Stream::Survey => Stream::Interaction,
        Stream::Interaction => Stream::Survey,
    }
}

#[test]
fn a_final_run_settles_and_closes_everything_and_says_so_in_its_checkpoint() {
    use crate::delivery::format as checkpoint;
    use crate::pipeline::Core;
    let t = topics();
    let st = super::tests::settings();
    let mut core = Core::new(st.clone());
    let mut sink = Sink::default();
    for s in [Stream::Survey, Stream::Interaction] {
        for (k, e) in t[s as usize].iter().enumerate() {
            let _ = core.process(0, k as i64, e.clone(), format!("{e:?}").as_bytes());
        }
    }
    core.advance(0);
    core.finish_all_final();
    let out = core.take_outputs();
    assert!(
        out.windows.iter().all(|(_, u)| u.is_final),
        "every row final"
    );
    sink.take(out);
    let rows = team_rows(&sink);
    assert!(!rows.iter().any(|r| r.1 == "unattributed"), "{rows:?}");
    assert!(rows.contains(&(150, "live".into(), 1, 1)), "{rows:?}");
    assert!(sink.facts.values().all(|f| f.0 >= 1), "every fact settled");
    let ps = core.partition(0).unwrap_or_else(|| panic!("partition 0"));
    assert_eq!(ps.join().pending_len() + ps.join().revisable_len(), 0);
    let bytes = checkpoint::encode(ps, &st, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let back =
        checkpoint::decode(&bytes, &st, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(back.value.is_final_run());
}

#[test]
fn revisable_surveys_survive_a_checkpoint() {
    use crate::delivery::format as checkpoint;
    use crate::pipeline::Core;
    let t = topics();
    let st = super::tests::settings();
    let mut core = Core::new(st.clone());
    // Everything but the last contact (the one that revises s130), then a round trip.
    let last = t[1].len() - 1;
    for s in [Stream::Survey, Stream::Interaction] {
        for (k, e) in t[s as usize]
            .iter()
            .enumerate()
            .filter(|(k, _)| s == Stream::Survey || *k < last)
        {
            let _ = core.process(0, k as i64, e.clone(), format!("{e:?}").as_bytes());
        }
    }
    core.advance(0);
    let ps = core.partition(0).unwrap_or_else(|| panic!("partition 0"));
    let held = ps.join().revisable_len();
    assert!(held > 0);
    let bytes = checkpoint::encode(ps, &st, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut fresh = Core::new(st.clone());
    fresh.restore(
        checkpoint::decode(&bytes, &st, &Default::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .value,
    );
    assert_eq!(
        fresh.partition(0).map(|p| p.join().revisable_len()),
        Some(held)
    );
    let _ = fresh.take_outputs();
    let e = t[1][last].clone();
    let _ = fresh.process(0, last as i64, e.clone(), format!("{e:?}").as_bytes());
    let out = fresh.take_outputs();
    let f = out
        .surveys
        .iter()
        .find(|f| f.resolved.survey.response_id == "s130");
    let f = f.unwrap_or_else(|| panic!("s130 revised after the restore"));
    assert_eq!((f.revision, f.first.is_none()), (1, true));
    assert_eq!(
        f.resolved
            .attribution
            .as_ref()
            .map(|a| a.interaction_id.as_str()),
        Some("i130b")
    );
}
