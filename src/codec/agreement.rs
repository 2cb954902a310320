//! The fast decoder against apache-avro, the reference: on generated data, on writer schemas
//! that evolved (fields added of every type, reordered, an optional field dropped, int
//! promoted to long), and on corrupted bytes, both must give the same event or the same
//! error, and valid data must actually take the fast path.

use super::*;
use crate::generator::{generate, Encoder, GenConfig, Rng};
use crate::model::{Interaction, Survey};
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use proptest::prelude::*;

fn schemas() -> Schemas {
    Schemas::embedded().unwrap_or_else(|e| panic!("{e}"))
}

/// Both decoders on one datum; the fast one must have served it when the reference accepts.
fn agree(w: &Writer, stream: Stream, datum: &[u8]) -> Result<Event, String> {
    let fast = w.decode(stream, datum).map_err(|e| e.to_string());
    let reference = w.decode_reference(stream, datum).map_err(|e| e.to_string());
    assert_eq!(fast, reference, "decoders disagree on {datum:?}");
    if let Ok(ev) = &reference {
        let plan = w
            .plan
            .as_ref()
            .and_then(|p| p.read(datum, Budget::default().max_values));
        assert!(plan.is_some(), "valid datum missed the fast path: {ev:?}");
    }
    reference
}

#[test]
fn generated_messages_decode_identically_and_valid_ones_take_the_fast_path() {
    let s = schemas();
    let cfg = GenConfig {
        count: 20_000,
        malformed_share: 0.05,
        ..GenConfig::default()
    };
    let enc = Encoder {
        format: WireFormat::Avro,
        schemas: s.clone(),
        ids: (1, 2),
    };
    let writers = [
        Writer::new(Stream::Survey, s.survey.clone()),
        Writer::new(Stream::Interaction, s.interaction.clone()),
    ];
    assert!(writers.iter().all(Writer::has_plan));
    let (mut ok, mut bad) = (0, 0);
    for g in generate(&cfg, WireFormat::Avro) {
        let datum = enc.encode(&g).unwrap_or_else(|e| panic!("{e}"));
        match agree(&writers[g.stream as usize], g.stream, &datum) {
            Ok(ev) => {
                ok += 1;
                if g.malformed.is_none() {
                    assert_eq!(ev, g.event);
                }
            }
            Err(_) => bad += 1,
        }
    }
    assert!(ok > 18_000 && bad > 100, "ok {ok}, bad {bad}");
}

/// A newer survey writer: fields reordered, `comment` dropped, and extra fields of every
/// type the fast path skips.
const SURVEY_V2: &str = r#"{"type": "record", "name": "SurveyResponse", "namespace": "cx.events",
 "fields": [
  {"name": "tags", "type": {"type": "array", "items": {"type": "record", "name": "Tag",
     "fields": [{"name": "k", "type": "string"}, {"name": "w", "type": "double"}]}}, "default": []},
  {"name": "customer_id", "type": "string"},
  {"name": "response_id", "type": "string"},
  {"name": "weight", "type": "float", "default": 1.0},
  {"name": "ticket_id", "type": ["null", "string"], "default": null},
  {"name": "attrs", "type": {"type": "map", "values": ["null", "long", "string"]}, "default": {}},
  {"name": "submitted_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "survey_channel", "type": {"type": "enum", "name": "SurveyChannel",
     "symbols": ["EMAIL", "SMS", "IN_APP", "WEB", "PHONE"]}},
  {"name": "digest", "type": {"type": "fixed", "name": "Md5", "size": 16}, "default": "0123456789abcdef"},
  {"name": "nps_score", "type": ["null", "int"], "default": null},
  {"name": "seen_on", "type": {"type": "int", "logicalType": "date"}, "default": 0},
  {"name": "csat_score", "type": ["null", "int"], "default": null},
  {"name": "blob", "type": ["null", "bytes"], "default": null},
  {"name": "region", "type": ["null", "string"], "default": null},
  {"name": "product", "type": ["null", "string"], "default": null},
  {"name": "flag", "type": "boolean", "default": false},
  {"name": "customer_tier", "type": ["null", "string"], "default": null},
  {"name": "mood", "type": {"type": "enum", "name": "Mood", "symbols": ["UP", "DOWN"]}, "default": "UP"}
 ]}"#;

/// A newer interaction writer whose durations are ints (promoted to long by the reader).
fn interaction_v2() -> Schema {
    let json = INTERACTION_SCHEMA
        .replace(
            r#""name": "talk_ms", "type": "long""#,
            r#""name": "talk_ms", "type": "int""#,
        )
        .replace(
            r#""name": "hold_ms", "type": "long""#,
            r#""name": "hold_ms", "type": "int""#,
        );
    assert_ne!(json, INTERACTION_SCHEMA);
    Schema::parse_str(&json).unwrap_or_else(|e| panic!("{e}"))
}

fn opt_str(s: &Option<String>) -> Value {
    s.as_ref()
        .map_or(Value::Union(0, Box::new(Value::Null)), |s| {
            Value::Union(1, Box::new(Value::String(s.clone())))
        })
}

fn opt_int(x: Option<i32>) -> Value {
    x.map_or(Value::Union(0, Box::new(Value::Null)), |x| {
        Value::Union(1, Box::new(Value::Int(x)))
    })
}

fn survey_v2_value(s: &Survey, nps: Option<i32>, csat: Option<i32>, n_tags: usize) -> Value {
    let channel = SURVEY_CHANNELS
        .iter()
        .position(|c| *c == s.survey_channel)
        .unwrap_or(0);
    let tags = (0..n_tags)
        .map(|i| {
            Value::Record(vec![
                ("k".into(), Value::String(format!("tag{i}"))),
                ("w".into(), Value::Double(i as f64 / 3.0)),
            ])
        })
        .collect();
    let attrs = (0..n_tags)
        .map(|i| {
            let v = match i % 3 {
                0 => Value::Union(0, Box::new(Value::Null)),
                1 => Value::Union(1, Box::new(Value::Long(-(i as i64)))),
                _ => Value::Union(2, Box::new(Value::String("é".repeat(i)))),
            };
            (format!("a{i}"), v)
        })
        .collect();
    Value::Record(vec![
        ("tags".into(), Value::Array(tags)),
        ("customer_id".into(), Value::String(s.customer_id.clone())),
        ("response_id".into(), Value::String(s.response_id.clone())),
        ("weight".into(), Value::Float(0.5)),
        ("ticket_id".into(), opt_str(&s.ticket_id)),
        ("attrs".into(), Value::Map(attrs)),
        (
            "submitted_at".into(),
            Value::TimestampMillis(s.submitted_at_ms),
        ),
        (
            "survey_channel".into(),
            Value::Enum(channel as u32, s.survey_channel.clone()),
        ),
        ("digest".into(), Value::Fixed(16, vec![7; 16])),
        ("nps_score".into(), opt_int(nps)),
        ("seen_on".into(), Value::Date(20_000)),
        ("csat_score".into(), opt_int(csat)),
        (
            "blob".into(),
            Value::Union(1, Box::new(Value::Bytes(vec![0xff; n_tags]))),
        ),
        ("region".into(), opt_str(&s.region)),
        ("product".into(), opt_str(&s.product)),
        ("flag".into(), Value::Boolean(n_tags % 2 == 0)),
        ("customer_tier".into(), opt_str(&s.customer_tier)),
        ("mood".into(), Value::Enum(1, "DOWN".into())),
    ])
}

fn interaction_v2_value(i: &Interaction) -> Value {
    let Value::Record(fields) = avro::interaction_value(i) else {
        unreachable!("interaction_value builds a record")
    };
    Value::Record(
        fields
            .into_iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("talk_ms" | "hold_ms", Value::Long(x)) => (k, Value::Int(x as i32)),
                (_, v) => (k, v),
            })
            .collect(),
    )
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z]{1,3}[0-9]{1,8}",
        1 => Just(String::new()),
        1 => Just("  ".to_string()),
        1 => "\\PC{0,12}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("\\PC{0,20}")
}

prop_compose! {
    fn arb_survey()(response_id in id(), customer_id in id(),
        ticket_id in proptest::option::of(id()), t in -10_000_000_000_000i64..10_000_000_000_000,
        channel in 0usize..5, nps in proptest::option::of(-2i32..13),
        csat in proptest::option::of(-1i32..8), comment in opt_text(), region in opt_text(),
        product in opt_text(), tier in opt_text())
        -> (Survey, Option<i32>, Option<i32>) {
        (Survey {
            response_id, customer_id, ticket_id, submitted_at_ms: t,
            survey_channel: SURVEY_CHANNELS[channel].to_string(),
            nps_score: None, csat_score: None, comment, region, product, customer_tier: tier,
        }, nps, csat)
    }
}

prop_compose! {
    fn arb_interaction()(ids in proptest::collection::vec(id(), 6), channel in 0usize..5,
        bucket in 0usize..2, product in opt_text(), start in -1_000_000i64..4_000_000_000_000,
        dur in -1_000i64..10_000_000, talk in -5i64..2_000_000_000, hold in -5i64..100_000,
        wrap in -5i64..100_000, resolved in any::<bool>()) -> Interaction {
        Interaction {
            interaction_id: ids[0].clone(), ticket_id: ids[1].clone(),
            customer_id: ids[2].clone(), agent_id: ids[3].clone(), team: ids[4].clone(),
            channel: CONTACT_CHANNELS[channel].to_string(), bucket: BUCKETS[bucket].to_string(),
            category: ids[5].clone(), product, started_at_ms: start, ended_at_ms: start + dur,
            talk_ms: talk, hold_ms: hold, wrap_ms: wrap, resolved,
        }
    }
}

use crate::model::{BUCKETS, CONTACT_CHANNELS, SURVEY_CHANNELS};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn surveys_agree_for_the_reader_and_an_evolved_writer(
        (s, nps, csat) in arb_survey(), n_tags in 0usize..4,
    ) {
        let reader = schemas().survey;
        let v2 = Arc::new(Schema::parse_str(SURVEY_V2).unwrap_or_else(|e| panic!("{e}")));
        prop_assert!(SchemaCompatibility::can_read(&v2, &reader).is_ok());
        let w1 = Writer::new(Stream::Survey, reader.clone());
        let w2 = Writer::new(Stream::Survey, v2.clone());
        prop_assert!(w2.has_plan());
        let d1 = avro::encode(&reader, avro::survey_value(&s, nps, csat))
            .unwrap_or_else(|e| panic!("{e}"));
        let d2 = avro::encode(&v2, survey_v2_value(&s, nps, csat, n_tags))
            .unwrap_or_else(|e| panic!("{e}"));
        let r1 = agree(&w1, Stream::Survey, &d1);
        let r2 = agree(&w2, Stream::Survey, &d2);
        // The evolved writer has no comment; otherwise both read the same survey.
        let strip = |r: Result<Event, String>| r.map(|e| match e {
            Event::Survey(s) => Event::Survey(Survey { comment: None, ..s }),
            other => other,
        });
        prop_assert_eq!(strip(r1), r2);
    }

    #[test]
    fn interactions_agree_for_the_reader_and_a_promoting_writer(
        i in arb_interaction(),
    ) {
        let reader = schemas().interaction;
        let v2 = Arc::new(interaction_v2());
        prop_assert!(SchemaCompatibility::can_read(&v2, &reader).is_ok());
        let w1 = Writer::new(Stream::Interaction, reader.clone());
        let w2 = Writer::new(Stream::Interaction, v2.clone());
        let d1 = avro::encode(&reader, avro::interaction_value(&i))
            .unwrap_or_else(|e| panic!("{e}"));
        let r1 = agree(&w1, Stream::Interaction, &d1);
        if let (Ok(t), Ok(h)) = (i32::try_from(i.talk_ms), i32::try_from(i.hold_ms)) {
            let narrow = Interaction { talk_ms: t.into(), hold_ms: h.into(), ..i };
            let d2 = avro::encode(&v2, interaction_v2_value(&narrow))
                .unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(agree(&w2, Stream::Interaction, &d2), r1);
        }
    }
}

#[test]
fn corrupted_bytes_get_the_same_answer_from_both() {
    let s = schemas();
    let v2 = Arc::new(Schema::parse_str(SURVEY_V2).unwrap_or_else(|e| panic!("{e}")));
    let writers = [
        (
            Writer::new(Stream::Survey, s.survey.clone()),
            Stream::Survey,
        ),
        (Writer::new(Stream::Survey, v2.clone()), Stream::Survey),
        (
            Writer::new(Stream::Interaction, s.interaction.clone()),
            Stream::Interaction,
        ),
    ];
    let g = generate(&GenConfig::default(), WireFormat::Avro);
    let survey = g.iter().find_map(|g| match &g.event {
        Event::Survey(s) if g.malformed.is_none() => Some(s.clone()),
        _ => None,
    });
    let contact = g.iter().find_map(|g| match &g.event {
        Event::Interaction(i) if g.malformed.is_none() => Some(i.clone()),
        _ => None,
    });
    let (Some(sv), Some(ct)) = (survey, contact) else {
        panic!("generator made no valid events")
    };
    let enc = |schema: &Schema, v: Value| avro::encode(schema, v).unwrap_or_else(|e| panic!("{e}"));
    let goods = [
        enc(&s.survey, avro::survey_value(&sv, Some(9), Some(4))),
        enc(&v2, survey_v2_value(&sv, Some(3), None, 3)),
        enc(&s.interaction, avro::interaction_value(&ct)),
    ];
    let mut r = Rng::new(11);
    let (mut same_ok, mut same_err) = (0, 0);
    for _ in 0..20_000 {
        let k = r.below(3) as usize;
        let mut b = goods[k].clone();
        match r.below(4) {
            0 => {
                let at = r.below(b.len() as u64) as usize;
                b[at] = r.next_u64() as u8;
            }
            1 => b.truncate(r.below(b.len() as u64) as usize),
            2 => b.push(r.next_u64() as u8),
            _ => {
                let at = r.below(b.len() as u64) as usize;
                b[at] ^= 1 << r.below(8);
            }
        }
        match agree(&writers[k].0, writers[k].1, &b) {
            Ok(_) => same_ok += 1,
            Err(_) => same_err += 1,
        }
    }
    assert!(
        same_ok > 500 && same_err > 5_000,
        "{same_ok} ok, {same_err} errors"
    );
}
