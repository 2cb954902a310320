use super::*;
use crate::model::{Interaction, Survey};
use apache_avro::schema_compatibility::SchemaCompatibility;

pub(super) fn survey() -> Survey {
    Survey {
        response_id: "r1".into(),
        customer_id: "c1".into(),
        ticket_id: Some("t1".into()),
        submitted_at_ms: 1_793_491_200_123,
        survey_channel: "SMS".into(),
        nps_score: Some(9),
        csat_score: Some(4),
        comment: Some("great".into()),
        region: Some("emea".into()),
        product: None,
        customer_tier: Some("smb".into()),
    }
}

fn interaction() -> Interaction {
    Interaction {
        interaction_id: "i1".into(),
        ticket_id: "t1".into(),
        customer_id: "c1".into(),
        agent_id: "a1".into(),
        team: "billing".into(),
        channel: "CHAT".into(),
        bucket: "PRE_SALES".into(),
        category: "diagnostics".into(),
        product: Some("mesh".into()),
        started_at_ms: 1000,
        ended_at_ms: 5000,
        talk_ms: 3000,
        hold_ms: 500,
        wrap_ms: 500,
        resolved: true,
    }
}

pub(super) fn schemas() -> Schemas {
    Schemas::embedded().unwrap_or_else(|e| panic!("{e}"))
}

fn confluent_decoder() -> Decoder {
    let s = schemas();
    let mut d = Decoder::new(WireFormat::Confluent, s.clone(), None);
    d.preload(Stream::Survey, 7, s.survey.clone());
    d.preload(Stream::Interaction, 8, s.interaction.clone());
    d
}

pub(super) fn survey_bytes(s: &Survey) -> Vec<u8> {
    let v = avro::survey_value(s, s.nps_score.map(i32::from), s.csat_score.map(i32::from));
    avro::encode(&schemas().survey, v).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn both_wire_formats_round_trip() {
    let s = survey();
    let datum = survey_bytes(&s);
    let mut raw = Decoder::new(WireFormat::Avro, schemas(), None);
    assert_eq!(
        raw.decode(Stream::Survey, &datum).ok(),
        Some(Event::Survey(s.clone()))
    );
    let mut d = confluent_decoder();
    assert_eq!(
        d.decode(Stream::Survey, &frame_confluent(7, &datum)).ok(),
        Some(Event::Survey(s))
    );
    let i = interaction();
    let b = avro::encode(&schemas().interaction, avro::interaction_value(&i))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.decode(Stream::Interaction, &frame_confluent(8, &b)).ok(),
        Some(Event::Interaction(i))
    );
}

#[test]
fn newer_writer_with_an_added_optional_field_decodes_with_the_old_reader() {
    let mut json: serde_json::Value = serde_json::from_str(SURVEY_SCHEMA).unwrap_or_default();
    let fields = json["fields"].as_array_mut().map(|f| {
        f.insert(
            3,
            serde_json::json!({"name": "language", "type": ["null", "string"], "default": null}),
        );
    });
    assert!(fields.is_some());
    let newer = Schema::parse_str(&json.to_string()).unwrap_or_else(|e| panic!("{e}"));
    assert!(SchemaCompatibility::can_read(&newer, &schemas().survey).is_ok());
    let s = survey();
    let apache_avro::types::Value::Record(mut rec) = avro::survey_value(&s, Some(9), Some(4))
    else {
        panic!("record expected")
    };
    rec.insert(
        3,
        (
            "language".into(),
            apache_avro::types::Value::Union(
                1,
                Box::new(apache_avro::types::Value::String("de".into())),
            ),
        ),
    );
    let datum = avro::encode(&newer, apache_avro::types::Value::Record(rec))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut d = confluent_decoder();
    d.preload(Stream::Survey, 9, Arc::new(newer));
    assert_eq!(
        d.decode(Stream::Survey, &frame_confluent(9, &datum)).ok(),
        Some(Event::Survey(s))
    );
}

#[test]
fn bad_payloads_get_a_reason_and_never_panic() {
    let mut d = confluent_decoder();
    let good = frame_confluent(7, &survey_bytes(&survey()));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "truncated_header"),
        (vec![0, 0, 0], "truncated_header"),
        (vec![1, 0, 0, 0, 7, 2], "bad_magic_byte"),
        (good[..good.len() - 6].to_vec(), "malformed_avro"),
        ([good.clone(), vec![0]].concat(), "malformed_avro"),
    ];
    for (payload, reason) in cases {
        let e = d.decode(Stream::Survey, &payload).err().map(|e| e.reason());
        assert_eq!(e, Some(reason), "{payload:?}");
    }
    d.preload_unknown(Stream::Survey, 5);
    let unknown = frame_confluent(5, &survey_bytes(&survey()));
    assert_eq!(
        d.decode(Stream::Survey, &unknown).err().map(|e| e.reason()),
        Some("unknown_schema_id")
    );
    // No registry configured: retryable, not dead-lettered.
    let e = d.decode(Stream::Survey, &frame_confluent(6, &[])).err();
    assert!(e.is_some_and(|e| e.disposition() == Disposition::Retry));
    // A survey datum on the interaction topic.
    let e = d
        .decode(
            Stream::Interaction,
            &frame_confluent(8, &survey_bytes(&survey())),
        )
        .err();
    assert!(e.is_some());
    // Random garbage never panics.
    let mut r = crate::generator::Rng::new(7);
    for _ in 0..2000 {
        let n = r.below(64) as usize;
        let mut v: Vec<u8> = (0..n).map(|_| r.next_u64() as u8).collect();
        if r.chance(0.5) && v.len() > 5 {
            v[..5].copy_from_slice(&[0, 0, 0, 0, 7]);
        }
        let _ = d.decode(Stream::Survey, &v);
        let _ = d.decode(Stream::Interaction, &v);
    }
}

#[test]
fn validation_names_the_field() {
    let mut d = Decoder::new(WireFormat::Avro, schemas(), None);
    let s = survey();
    let bad = |nps, csat| {
        avro::encode(&schemas().survey, avro::survey_value(&s, nps, csat))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let e = d
        .decode(Stream::Survey, &bad(Some(11), None))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("nps_score") && e.contains("11"), "{e}");
    let e = d
        .decode(Stream::Survey, &bad(None, Some(0)))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("csat_score"), "{e}");
    let mut i = interaction();
    i.ended_at_ms = 0;
    let b = avro::encode(&schemas().interaction, avro::interaction_value(&i))
        .unwrap_or_else(|e| panic!("{e}"));
    let e = d
        .decode(Stream::Interaction, &b)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("ended_at"), "{e}");
}

/// A **stub** schema source standing in for the registry: every id is `json`. The real
/// registry path is covered by the integration tests; here only the decoder's rules matter.
pub(super) struct OneSchema(pub(super) String);

impl SchemaSource for OneSchema {
    fn fetch(&self, _id: u32) -> Result<Option<String>, Fetch> {
        Ok(Some(self.0.clone()))
    }
}

/// The survey contract with `field` added first, as a producer may register it.
pub(super) fn survey_schema_with_leading(field: serde_json::Value) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(SURVEY_SCHEMA).unwrap_or_else(|e| panic!("{e}"));
    let Some(fields) = v.get_mut("fields").and_then(|f| f.as_array_mut()) else {
        panic!("the survey schema has fields")
    };
    fields.insert(0, field);
    v.to_string()
}

pub(super) fn zigzag(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

pub(super) fn hostile_decoder(schema: String) -> Decoder {
    Decoder::new(
        WireFormat::Confluent,
        schemas(),
        Some(Box::new(OneSchema(schema))),
    )
}

/// The messages that once aborted or stalled the job: an added `array<null>` field with 40
/// (or 100,000) blocks of 16,000,000 zero-width items, and an added recursive record nested
/// 400,000 levels. Each is refused when its schema is resolved, without reading the datum.
#[test]
fn unbounded_writer_schemas_are_refused_once_per_id_not_read() {
    let array_of_null = survey_schema_with_leading(serde_json::json!(
        {"name": "pad", "type": {"type": "array", "items": "null"}}
    ));
    let recursive = survey_schema_with_leading(serde_json::json!(
        {"name": "chain", "type": ["null", {"type": "record", "name": "Node",
            "fields": [{"name": "next", "type": ["null", "Node"]}]}]}
    ));
    let block = zigzag(16_000_000);
    let forty: Vec<u8> = (0..40).flat_map(|_| block.clone()).collect();
    let many: Vec<u8> = (0..100_000).flat_map(|_| block.clone()).collect();
    let mut nested = vec![2u8; 400_000]; // union branch 1 (Node), then `next` again ...
    nested.push(0); // ... until a null
    for (schema, datum, rule) in [
        (array_of_null.clone(), forty, "zero-width"),
        (array_of_null, many, "zero-width"),
        (recursive, nested, "contains itself"),
    ] {
        let mut d = hostile_decoder(schema);
        let payload = frame_confluent(77, &datum);
        for _ in 0..2 {
            match d.decode(Stream::Survey, &payload) {
                Err(e @ DecodeError::IncompatibleSchema { .. }) => {
                    assert_eq!(e.reason(), "incompatible_schema");
                    assert_eq!(
                        e.disposition(),
                        Disposition::DeadLetter("incompatible_schema")
                    );
                    assert!(e.to_string().contains(rule), "{e}");
                }
                other => panic!("expected a refused schema, got {other:?}"),
            }
        }
    }
}

/// A writer schema with a reused named type and real arrays is an ordinary evolution.
#[test]
fn bounded_evolutions_still_decode_through_the_schema_source() {
    let evolved = survey_schema_with_leading(serde_json::json!(
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []}
    ));
    let w = Schema::parse_str(&evolved).unwrap_or_else(|e| panic!("{e}"));
    let s = survey();
    let mut fields =
        match avro::survey_value(&s, s.nps_score.map(i32::from), s.csat_score.map(i32::from)) {
            apache_avro::types::Value::Record(f) => f,
            other => panic!("{other:?}"),
        };
    fields.insert(
        0,
        (
            "tags".into(),
            apache_avro::types::Value::Array(vec![apache_avro::types::Value::String("vip".into())]),
        ),
    );
    let datum = avro::encode(&w, apache_avro::types::Value::Record(fields))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut d = hostile_decoder(evolved);
    let got = d.decode(Stream::Survey, &frame_confluent(78, &datum));
    assert_eq!(got.ok(), Some(Event::Survey(s)));
}
