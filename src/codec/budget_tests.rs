//! Bounded work per message (`budget.rs`) and bounded schema lookups (`cache.rs`), driven
//! through the decoder as a message would be, with a **stub** schema source in place of the
//! registry (the real registry path is in the integration tests).

use super::tests::{
    hostile_decoder, schemas, survey, survey_bytes, survey_schema_with_leading, zigzag,
};
use super::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The survey contract with one leading field of `field_type`, and a datum of it whose
/// leading value is `lead` followed by an ordinary survey.
fn evolved(field_type: serde_json::Value, lead: &[u8]) -> (String, Vec<u8>) {
    let schema =
        survey_schema_with_leading(serde_json::json!({"name": "lead", "type": field_type}));
    let datum = [lead, &survey_bytes(&survey())].concat();
    (schema, datum)
}

/// Decodes through the fast path (with its fallback) and through the reference alone; both
/// must give the same answer.
fn both(schema: &str, datum: &[u8], budget: Budget) -> Result<Event, DecodeError> {
    let mut d = hostile_decoder(schema.to_string()).budget(budget);
    let w = d
        .writer(Stream::Survey, 1)
        .unwrap_or_else(|e| panic!("schema refused: {e}"));
    let fast = w.decode(Stream::Survey, datum);
    let reference = w.decode_reference(Stream::Survey, datum);
    assert_eq!(
        fast.as_ref().map_err(|e| e.to_string()),
        reference.as_ref().map_err(|e| e.to_string())
    );
    fast
}

fn limit_of(r: Result<Event, DecodeError>) -> &'static str {
    match r {
        Err(DecodeError::ResourceLimit { limit, .. }) => limit,
        other => panic!("expected a resource limit, got {other:?}"),
    }
}

#[test]
fn a_datum_past_the_value_budget_is_refused_by_both_paths_and_within_it_decodes() {
    // 150,000 longs of one byte each: well-formed, and past the default 100,000 values.
    let items = 150_000;
    let lead = [zigzag(items), vec![0; items as usize], vec![0]].concat();
    let (schema, datum) = evolved(serde_json::json!({"type": "array", "items": "long"}), &lead);
    let e = both(&schema, &datum, Budget::default());
    assert_eq!(limit_of(e), "codec.max_values_per_message");
    let roomy = Budget {
        max_values: 200_000,
        ..Budget::default()
    };
    assert_eq!(
        both(&schema, &datum, roomy).ok(),
        Some(Event::Survey(survey()))
    );
}

#[test]
fn lengths_claiming_more_than_the_bytes_left_are_malformed_before_any_allocation() {
    for (ty, lead) in [
        // apache-avro would reserve 16,000,000 values for this block before reading one.
        (
            serde_json::json!({"type": "array", "items": "long"}),
            zigzag(16_000_000),
        ),
        (
            serde_json::json!({"type": "map", "values": "long"}),
            zigzag(-16_000_000),
        ),
        (serde_json::json!("string"), zigzag(1 << 40)),
        (serde_json::json!("bytes"), zigzag(15_000_000)),
        (
            serde_json::json!({"type": "fixed", "name": "Big", "size": 1_000_000_000}),
            vec![],
        ),
    ] {
        let (schema, datum) = evolved(ty.clone(), &lead);
        match both(&schema, &datum, Budget::default()) {
            Err(e @ DecodeError::Avro(_)) => {
                assert_eq!(e.reason(), "malformed_avro");
                assert!(e.to_string().contains("remain"), "{ty}: {e}");
            }
            other => panic!("{ty}: expected malformed, got {other:?}"),
        }
    }
}

/// Named types each holding the one before twice, 25 deep: shallow enough for the guard, and
/// a zero-byte value of the last holds 2^25 nulls. Without the walk's count apache-avro would
/// visit every one (minutes, per message); with it the message stops at the budget.
#[test]
fn zero_width_fan_out_through_named_types_stops_at_the_value_budget() {
    let mut def = serde_json::json!({"type": "record", "name": "A0",
        "fields": [{"name": "n", "type": "null"}]});
    for i in 1..=25 {
        def = serde_json::json!({"type": "record", "name": format!("A{i}"), "fields": [
            {"name": "a", "type": def}, {"name": "b", "type": format!("A{}", i - 1)}]});
    }
    let (schema, datum) = evolved(def, &[]);
    assert_eq!(
        limit_of(both(&schema, &datum, Budget::default())),
        "codec.max_values_per_message"
    );
}

#[test]
fn a_payload_over_the_size_limit_is_refused_before_it_is_read() {
    let payload = frame_confluent(1, &survey_bytes(&survey()));
    let budget = |max_message_bytes| Budget {
        max_message_bytes,
        ..Budget::default()
    };
    let mut d = hostile_decoder(SURVEY_SCHEMA.to_string()).budget(budget(payload.len() - 1));
    let e = d.decode(Stream::Survey, &payload);
    assert_eq!(limit_of(e), "codec.max_message_bytes");
    let mut d = hostile_decoder(SURVEY_SCHEMA.to_string()).budget(budget(payload.len()));
    assert!(d.decode(Stream::Survey, &payload).is_ok());
}

/// A **stub** registry that knows every id as the survey contract and counts its requests.
struct Counting(Arc<Mutex<u64>>);

impl SchemaSource for Counting {
    fn fetch(&self, _id: u32) -> Result<Option<String>, Fetch> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Ok(Some(SURVEY_SCHEMA.to_string()))
    }
}

/// A new schema id per message: lookups run at the configured rate (the rest wait and are
/// retried, never dead-lettered), the cache stays at its cap, and every message decodes
/// exactly as it would with no limits at all.
#[test]
fn a_schema_id_flood_is_throttled_and_bounded_and_changes_no_result() {
    let t0 = Instant::now();
    let clock = Arc::new(Mutex::new(t0));
    let c = clock.clone();
    let requests = Arc::new(Mutex::new(0u64));
    let policy = LookupPolicy {
        per_second: 5.0,
        max_cached: 10,
        ..LookupPolicy::default()
    };
    let mut d = Decoder::new(
        WireFormat::Confluent,
        schemas(),
        Some(Box::new(Counting(requests.clone()))),
    )
    .lookups(policy)
    .clock(Arc::new(move || {
        *c.lock().unwrap_or_else(|p| p.into_inner())
    }));
    let datum = survey_bytes(&survey());
    let mut throttled = 0;
    for id in 1000..1100u32 {
        let payload = frame_confluent(id, &datum);
        loop {
            match d.decode(Stream::Survey, &payload) {
                Ok(ev) => {
                    assert_eq!(ev, Event::Survey(survey()));
                    break;
                }
                Err(e) => {
                    assert_eq!(e.disposition(), Disposition::Retry, "{e}");
                    let wait = e.retry_in().unwrap_or_else(|| panic!("{e}"));
                    throttled += 1;
                    *clock.lock().unwrap_or_else(|p| p.into_inner()) += wait;
                }
            }
        }
    }
    let s = d.lookup_stats();
    assert_eq!(s.requests[0], 100);
    assert_eq!(*requests.lock().unwrap_or_else(|p| p.into_inner()), 100);
    assert_eq!(s.throttled[0], throttled);
    assert_eq!((s.cached, s.evicted), (10, 90));
    // 5 a second with a burst of 5: the 100 lookups took at least 19 s of the clock.
    let took = clock
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .duration_since(t0);
    assert!(took >= Duration::from_secs(19), "{took:?}");
    // A cached id costs no request, however often it comes.
    for _ in 0..50 {
        assert!(d
            .decode(Stream::Survey, &frame_confluent(1099, &datum))
            .is_ok());
    }
    assert_eq!(d.lookup_stats().requests[0], 100);
}

/// An unknown id is asked again after `unknown_ttl`, not per message.
#[test]
fn unknown_ids_are_remembered_until_their_ttl() {
    struct Never(Arc<Mutex<u64>>);
    impl SchemaSource for Never {
        fn fetch(&self, _id: u32) -> Result<Option<String>, Fetch> {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            Ok(None)
        }
    }
    let clock = Arc::new(Mutex::new(Instant::now()));
    let c = clock.clone();
    let asked = Arc::new(Mutex::new(0u64));
    let mut d = Decoder::new(
        WireFormat::Confluent,
        schemas(),
        Some(Box::new(Never(asked.clone()))),
    )
    .clock(Arc::new(move || {
        *c.lock().unwrap_or_else(|p| p.into_inner())
    }))
    .unknown_ttl(Duration::from_secs(60));
    let payload = frame_confluent(5, &survey_bytes(&survey()));
    for _ in 0..10 {
        let e = d.decode(Stream::Survey, &payload).err();
        assert_eq!(e.map(|e| e.reason()), Some("unknown_schema_id"));
    }
    assert_eq!(*asked.lock().unwrap_or_else(|p| p.into_inner()), 1);
    *clock.lock().unwrap_or_else(|p| p.into_inner()) += Duration::from_secs(61);
    let _ = d.decode(Stream::Survey, &payload);
    assert_eq!(*asked.lock().unwrap_or_else(|p| p.into_inner()), 2);
}

#[test]
fn the_local_avro_format_obeys_the_same_budget() {
    let d = Decoder::new(WireFormat::Avro, schemas(), None);
    let mut d = d.budget(Budget {
        max_values: 5,
        ..Budget::default()
    });
    let e = d.decode(Stream::Survey, &survey_bytes(&survey()));
    assert_eq!(limit_of(e), "codec.max_values_per_message");
}

/// Found by the `decode` fuzz target: apache-avro 0.20 panics (an `unwrap` in `Name::parse`)
/// on a record whose name is not an Avro name. A producer can register one; the schema is
/// refused and the message dead-lettered, the job goes on.
#[test]
fn a_schema_apache_avro_panics_on_is_refused_not_fatal() {
    let bad = SURVEY_SCHEMA.replacen(
        r#""name": "SurveyResponse""#,
        r#""name": "Sury. Topic: x""#,
        1,
    );
    assert_ne!(
        bad, SURVEY_SCHEMA,
        "the contract names its record SurveyResponse"
    );
    let mut d = hostile_decoder(bad);
    let e = d.decode(
        Stream::Survey,
        &frame_confluent(3, &survey_bytes(&survey())),
    );
    match e {
        Err(e @ DecodeError::IncompatibleSchema { .. }) => {
            assert!(e.to_string().contains("could not parse"), "{e}")
        }
        other => panic!("expected a refused schema, got {other:?}"),
    }
}

/// The cache is bounded by schema bytes as well as by entries: big schemas push the least
/// recently used out long before the entry cap, and every message still decodes.
#[test]
fn the_schema_cache_is_bounded_by_bytes() {
    let per = SURVEY_SCHEMA.len();
    let policy = LookupPolicy {
        per_second: 1e9,
        max_cached: 1000,
        max_cached_bytes: 3 * per + per / 2,
        ..LookupPolicy::default()
    };
    let requests = Arc::new(Mutex::new(0u64));
    let mut d = Decoder::new(
        WireFormat::Confluent,
        schemas(),
        Some(Box::new(Counting(requests.clone()))),
    )
    .lookups(policy);
    let datum = survey_bytes(&survey());
    for id in 1..=10u32 {
        let ev = d.decode(Stream::Survey, &frame_confluent(id, &datum));
        assert_eq!(ev.ok(), Some(Event::Survey(survey())));
        let s = d.lookup_stats();
        assert!(s.cached_bytes <= policy.max_cached_bytes, "{s:?}");
    }
    let s = d.lookup_stats();
    assert_eq!((s.cached, s.evicted, s.cached_bytes), (3, 7, 3 * per));
}
