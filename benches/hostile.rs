//! What one hostile message costs to decode, worst cases side by side with an ordinary
//! survey (docs/PERFORMANCE.md, "Hostile input"). Each message goes through the decoder as
//! the job would run it: writer schema resolved once (a **stub** schema source stands in for
//! the registry, as the cost of a lookup is not what is measured), then the fast path and,
//! where it declines, the bounded walk and apache-avro.
//!
//! Run: `cargo bench --bench hostile`.

use criterion::{criterion_group, criterion_main, Criterion};
use cx_pipeline::codec::{
    avro, frame_confluent, Decoder, Fetch, SchemaSource, Schemas, WireFormat,
};
use cx_pipeline::model::{Stream, Survey};
use std::collections::HashMap;
use std::hint::black_box;

/// **Stub** registry: a fixed map of ids to schema JSON.
struct Stub(HashMap<u32, String>);

impl SchemaSource for Stub {
    fn fetch(&self, id: u32) -> Result<Option<String>, Fetch> {
        Ok(self.0.get(&id).cloned())
    }
}

fn zigzag(n: i64) -> Vec<u8> {
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

fn leading(schemas: &Schemas, ty: serde_json::Value) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&schemas.survey_json).unwrap_or_else(|e| panic!("{e}"));
    if let Some(f) = v["fields"].as_array_mut() {
        f.insert(0, serde_json::json!({"name": "lead", "type": ty}));
    }
    v.to_string()
}

fn survey_datum(schemas: &Schemas) -> Vec<u8> {
    let s = Survey {
        response_id: "r1".into(),
        customer_id: "c1".into(),
        ticket_id: Some("t1".into()),
        submitted_at_ms: 1_793_491_200_000,
        survey_channel: "EMAIL".into(),
        nps_score: Some(9),
        csat_score: Some(5),
        comment: None,
        region: None,
        product: None,
        customer_tier: None,
    };
    avro::encode(&schemas.survey, avro::survey_value(&s, Some(9), Some(5)))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn hostile(c: &mut Criterion) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let mut fanout = serde_json::json!({"type": "record", "name": "A0",
        "fields": [{"name": "n", "type": "null"}]});
    for i in 1..=25 {
        fanout = serde_json::json!({"type": "record", "name": format!("A{i}"), "fields": [
            {"name": "a", "type": fanout}, {"name": "b", "type": format!("A{}", i - 1)}]});
    }
    let types = [
        (1, serde_json::json!({"type": "array", "items": "null"})),
        (
            2,
            serde_json::json!(["null", {"type": "record", "name": "Node",
                "fields": [{"name": "next", "type": ["null", "Node"]}]}]),
        ),
        (3, serde_json::json!({"type": "array", "items": "long"})),
        (4, fanout),
        (5, serde_json::json!("string")),
    ];
    let mut map: HashMap<u32, String> = types
        .into_iter()
        .map(|(id, ty)| (id, leading(&schemas, ty)))
        .collect();
    map.insert(9, schemas.survey_json.clone());
    let block = zigzag(16_000_000);
    let survey = survey_datum(&schemas);
    let with = |id: u32, lead: Vec<u8>| frame_confluent(id, &[lead, survey.clone()].concat());
    let big_string = 1_000_000;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ordinary_survey", frame_confluent(9, &survey)),
        ("array_of_null_40_blocks", with(1, block.repeat(40))),
        (
            "recursive_400k_levels",
            with(2, [vec![2u8; 400_000], vec![0]].concat()),
        ),
        (
            "longs_99k_within_budget",
            with(3, [zigzag(99_000), vec![0; 99_000], vec![0]].concat()),
        ),
        (
            "longs_150k_past_budget",
            with(3, [zigzag(150_000), vec![0; 150_000], vec![0]].concat()),
        ),
        (
            "block_claims_16m",
            with(3, [block.clone(), vec![2; 50]].concat()),
        ),
        ("fanout_2_pow_25_nulls", with(4, vec![])),
        (
            "string_1mb",
            with(
                5,
                [zigzag(big_string), vec![b'a'; big_string as usize]].concat(),
            ),
        ),
    ];
    let mut d = Decoder::new(
        WireFormat::Confluent,
        schemas.clone(),
        Some(Box::new(Stub(map))),
    );
    // The most one datum can materialise in apache-avro's fallback: one Value per counted
    // value (plus the payload's own bytes for strings), so `max_values` x this.
    eprintln!(
        "size_of::<apache_avro::types::Value>() = {} bytes",
        std::mem::size_of::<apache_avro::types::Value>()
    );
    let mut g = c.benchmark_group("hostile_message");
    for (name, payload) in &cases {
        let outcome = d
            .decode(Stream::Survey, payload)
            .map(|_| "decoded")
            .unwrap_or_else(|e| e.reason());
        eprintln!("{name}: {} bytes -> {outcome}", payload.len());
        g.bench_function(*name, |b| {
            b.iter(|| black_box(d.decode(Stream::Survey, black_box(payload)).is_ok()))
        });
    }
    g.finish();
}

criterion_group!(benches, hostile);
criterion_main!(benches);
