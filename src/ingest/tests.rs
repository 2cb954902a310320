use super::*;
use crate::model::{Interaction, Survey};

const NOW: i64 = 1_790_000_000_000; // 2026-09

fn survey_at(t: i64) -> Event {
    Event::Survey(Survey {
        response_id: "r".into(),
        customer_id: "c".into(),
        ticket_id: None,
        submitted_at_ms: t,
        survey_channel: "EMAIL".into(),
        nps_score: Some(3),
        csat_score: None,
        comment: Some("personal words".into()),
        region: None,
        product: None,
        customer_tier: None,
    })
}

fn contact(talk: i64) -> Event {
    Event::Interaction(Interaction {
        interaction_id: "i".into(),
        ticket_id: "t".into(),
        customer_id: "c".into(),
        agent_id: "a".into(),
        team: "x".into(),
        channel: "PHONE".into(),
        bucket: "PRE_SALES".into(),
        category: "billing".into(),
        product: None,
        started_at_ms: NOW - 1000,
        ended_at_ms: NOW,
        talk_ms: talk,
        hold_ms: 0,
        wrap_ms: 0,
        resolved: true,
    })
}

#[test]
fn event_times_out_of_range_are_rejected_with_their_own_reason() {
    let l = Limits::default();
    let reason = |t: i64, rec: Option<i64>| check(&survey_at(t), rec, &l).err().map(|r| r.reason);
    assert_eq!(reason(NOW, Some(NOW)), None);
    assert_eq!(reason(NOW + 3_599_000, Some(NOW)), None, "within the skew");
    let far_future = 4_102_444_800_000; // 2100-01-01
    for (t, rec) in [
        (far_future, Some(NOW)),  // a skewed client clock
        (NOW * 1000, Some(NOW)),  // microseconds sent as milliseconds
        (NOW * 1000, None),       // ... even without a record timestamp
        (0, Some(NOW)),           // a missing value
        (-86_400_000, Some(NOW)), // negative
        (i64::MIN, None),
        (i64::MAX, None),
    ] {
        assert_eq!(reason(t, rec), Some("event_time_out_of_range"), "{t}");
    }
    // Far behind the record is lateness, judged by the clocks, not here.
    assert_eq!(reason(NOW - 30 * 86_400_000, Some(NOW)), None);
}

#[test]
fn durations_above_the_bound_are_rejected_naming_the_field() {
    let l = Limits::default();
    assert!(check(&contact(3_600_000), Some(NOW), &l).is_ok());
    let r = check(&contact(3_600_000_000), Some(NOW), &l).err();
    assert_eq!(r.as_ref().map(|r| r.reason), Some("out_of_range"));
    assert!(r.is_some_and(|r| r.detail.starts_with("talk_ms = 3600000000")));
}

#[test]
fn details_never_quote_a_comment() {
    let l = Limits::default();
    let r = check(&survey_at(0), None, &l)
        .err()
        .map(|r| r.detail)
        .unwrap_or_default();
    assert!(!r.contains("personal"), "{r}");
}

#[test]
fn the_decoders_lookup_counts_are_published_as_deltas() {
    use crate::codec::LookupStats;
    let m = Metrics::new(10);
    let topics = ["surveys".to_string(), "contacts".to_string()];
    let mut before = LookupStats::default();
    for (requests, throttled, evicted, cached) in [(3, 1, 0, 3), (5, 4, 2, 3)] {
        let now = LookupStats {
            requests: [requests, 1],
            throttled: [throttled, 0],
            evicted,
            cached,
            cached_bytes: cached * 100,
        };
        SchemaLookups {
            topics: &topics,
            before,
            now,
        }
        .emit(&m);
        before = now;
    }
    let get = |t: &str, o: &str| m.schemas.lookups.with_label_values(&[t, o]).get();
    assert_eq!(get("surveys", "requested"), 5);
    assert_eq!(get("surveys", "throttled"), 4);
    assert_eq!(get("contacts", "requested"), 1);
    assert_eq!(m.schemas.cache_evictions.get(), 2);
    assert_eq!(m.schemas.cache_entries.get(), 3);
}

#[test]
fn long_ids_segment_values_and_comments_are_too_long_naming_the_field_only() {
    let l = Limits::default();
    let long = "x".repeat(l.max_key_bytes + 1);
    let mut s = survey_at(NOW);
    if let Event::Survey(s) = &mut s {
        s.region = Some(long.clone());
    }
    let r = check(&s, Some(NOW), &l).err();
    assert_eq!(r.as_ref().map(|r| r.reason), Some("too_long"));
    let detail = r.map(|r| r.detail).unwrap_or_default();
    assert!(
        detail.starts_with("region is 257 bytes") && !detail.contains("xx"),
        "{detail}"
    );
    let mut c = contact(1000);
    if let Event::Interaction(i) = &mut c {
        i.agent_id = long.clone();
    }
    let r = check(&c, Some(NOW), &l).err().map(|r| r.detail);
    assert!(r.is_some_and(|d| d.starts_with("agent_id is 257 bytes")));
    let mut s = survey_at(NOW);
    if let Event::Survey(s) = &mut s {
        s.comment = Some("é".repeat(l.max_comment_bytes / 2 + 1));
    }
    let r = check(&s, Some(NOW), &l).err().map(|r| r.detail);
    assert!(r.is_some_and(|d| d.starts_with("comment is 16386 bytes") && !d.contains('é')));
    // At the limit is fine.
    let mut s = survey_at(NOW);
    if let Event::Survey(s) = &mut s {
        s.region = Some("x".repeat(l.max_key_bytes));
        s.comment = Some("x".repeat(l.max_comment_bytes));
    }
    assert!(check(&s, Some(NOW), &l).is_ok());
}
