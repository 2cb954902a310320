//! Memory stays bounded whatever the input: one partition's contacts silent for 30 days of
//! event time while surveys flow. The open-row cap closes the oldest windows early; the
//! state's bytes stay under the cap's budget all along, and once the contacts' backlog
//! arrives every survey and contact is still counted exactly once (checked against counts
//! of the input, not against the pipeline's own rows).

use super::tests::{contact, settings, survey};
use super::*;
use std::collections::HashMap;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;

/// Latest state per row (window key x revision), as ReplacingMergeTree keeps it.
type Rows = HashMap<(crate::window::WindowKey, u64), (u64, Partial)>;

fn keep(rows: &mut Rows, out: &mut Outputs) {
    for (_, u) in out.windows.drain(..) {
        let e = rows
            .entry((u.key.clone(), u.revision))
            .or_insert((0, Partial::default()));
        if u.version >= e.0 {
            *e = (u.version, u.partial);
        }
    }
}

#[test]
fn a_month_of_silent_contacts_keeps_state_under_the_cap_and_totals_exact() {
    let mut st = settings();
    let cap = 2_000;
    st.limits.max_open_rows = cap;
    let mut ps = PartitionState::new(0);
    let (mut out, mut rows) = (Outputs::default(), Rows::new());
    let t0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;
    let (mut survey_offset, mut contact_offset) = (0i64, 0i64);
    let mut add_contact = |ps: &mut PartitionState, out: &mut Outputs, id: String, t: i64| {
        contact_offset += 1;
        let c = contact(&id, &format!("t-{id}"), "c", "team-a", t);
        ps.on_interaction(c, contact_offset, id.as_bytes(), &st, out)
            .map(|_| ())
            .unwrap_or_else(|e| panic!("{e:?}"));
    };
    add_contact(&mut ps, &mut out, "first".into(), t0);
    let (mut surveys, mut contacts, mut peak) = (0u64, 1u64, 0usize);
    // A survey every minute for 30 days, each from another customer and region, while the
    // contacts are silent: the contact floor never moves, so no window closes on time.
    for m in 0..30 * 24 * 60 {
        let t = t0 + m * MIN;
        survey_offset += 1;
        let mut s = survey(&format!("r{m}"), &format!("c{m}"), None, t, (m % 11) as u8);
        s.region = Some(format!("region-{}", m % 97));
        ps.on_survey(s, survey_offset, b"s", &st, &mut out)
            .unwrap_or_else(|e| panic!("{e:?}"));
        surveys += 1;
        if m % 10 == 9 {
            ps.advance(&st, &mut out);
            ps.drain(&st, &mut out);
            keep(&mut rows, &mut out);
            let w = ps.windows();
            peak = peak.max(w.row_bytes() + w.segment_bytes());
            assert!(w.open_len() <= cap, "{} rows open", w.open_len());
        }
    }
    assert!(peak <= cap * 200, "state bytes peaked at {peak}");
    assert!(ps.early_closed_ms > t0, "windows closed early at the cap");
    // The backlog: a contact every hour of the month, then the streams move on together.
    for h in 0..30 * 24 {
        add_contact(
            &mut ps,
            &mut out,
            format!("b{h}"),
            t0 + h * 60 * MIN + 30_000,
        );
        contacts += 1;
    }
    for m in 0..120 {
        let t = t0 + 30 * DAY + m * MIN;
        survey_offset += 1;
        let s = survey(&format!("n{m}"), &format!("n{m}"), None, t, 9);
        ps.on_survey(s, survey_offset, b"s", &st, &mut out)
            .unwrap_or_else(|e| panic!("{e:?}"));
        surveys += 1;
        add_contact(&mut ps, &mut out, format!("n{m}"), t);
        contacts += 1;
    }
    // Far ahead on both streams: every pending survey settles and every window closes.
    survey_offset += 1;
    let s = survey("end", "end", None, t0 + 40 * DAY, 9);
    ps.on_survey(s, survey_offset, b"s", &st, &mut out)
        .unwrap_or_else(|e| panic!("{e:?}"));
    surveys += 1;
    add_contact(&mut ps, &mut out, "end".into(), t0 + 40 * DAY);
    contacts += 1;
    ps.advance(&st, &mut out);
    ps.drain(&st, &mut out);
    keep(&mut rows, &mut out);
    assert!(out.windows_closed_early > 0, "counted for the metric");
    for size in [MIN, 60 * MIN] {
        let (mut r, mut c) = (0, 0);
        for ((k, _), (_, p)) in &rows {
            if k.size_ms == size && k.grouping == 0 {
                r += p.responses;
                c += p.contacts;
            }
        }
        // The last survey and contact are at +40 days, in windows still open.
        let open: u64 = ps
            .window_snapshot(&st)
            .iter()
            .filter(|(k, _)| k.size_ms == size && k.grouping == 0)
            .map(|(_, p)| p.responses)
            .sum();
        assert_eq!(r.max(open), r, "open rows were emitted too");
        assert_eq!(
            r, surveys,
            "every survey counted once in the {size} ms rows"
        );
        assert_eq!(
            c, contacts,
            "every contact counted once in the {size} ms rows"
        );
    }
}

#[test]
fn the_early_close_survives_a_checkpoint_and_older_checkpoints_still_read() {
    use crate::delivery::format;
    let st = settings();
    let src = format::SourceIdentity::default();
    let mut ps = PartitionState::new(3);
    ps.restore_early_closed_ms(42 * MIN);
    let bytes = format::encode(&ps, &st, &src).unwrap_or_else(|e| panic!("{e}"));
    let back = format::decode(&bytes, &st, &src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.value.early_closed_ms(), 42 * MIN);
    // Before the trailer: header and state only.
    let old = postcard::to_extend(&ps, format::header(&st, &src).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let back = format::decode(&old, &st, &src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.value.early_closed_ms(), i64::MIN);
}
