//! The fuzz targets' seed corpus (`fuzz/seeds/<target>/`), built here from the crate's own
//! encoders so it follows the contracts: the three hostile messages that once aborted or
//! stalled the job, the budget's variants, ordinary and evolved messages, a real checkpoint,
//! the example config and configs with planted secrets. The test fails when a checked-in
//! seed differs from what it builds; `CXP_WRITE_SEEDS=1` rewrites them.

use crate::common::hostile::{fanout, leading, longs, nulls, recursive, zigzag};
use cx_pipeline::codec::{avro, frame_confluent, Schemas, WireFormat};
use cx_pipeline::config::Config;
use cx_pipeline::delivery::format::{self, SourceIdentity};
use cx_pipeline::generator::{generate, Encoder, GenConfig};
use cx_pipeline::model::{Event, Stream};
use cx_pipeline::pipeline::Core;
use std::path::Path;

/// The decode target's literal form: odd byte, `len:u16`, schema JSON, datum.
fn literal(schema: &str, datum: &[u8]) -> Vec<u8> {
    let len = u16::try_from(schema.len()).unwrap_or_else(|e| panic!("{e}"));
    [&[1u8][..], &len.to_be_bytes(), schema.as_bytes(), datum].concat()
}

fn decode_seeds(schemas: &Schemas, survey: &[u8]) -> Vec<(String, Vec<u8>)> {
    let nulls = leading(schemas, nulls());
    let recursive = leading(schemas, recursive());
    let longs = leading(schemas, longs());
    let tags = leading(
        schemas,
        serde_json::json!({"type": "array", "items": "string"}),
    );
    let block = zigzag(16_000_000);
    let with = |lead: Vec<u8>| [lead, survey.to_vec()].concat();
    vec![
        ("ordinary", literal(&schemas.survey_json, survey)),
        ("nulls_40_blocks", literal(&nulls, &block.repeat(40))),
        (
            "nulls_100000_blocks",
            literal(&nulls, &block.repeat(100_000)),
        ),
        (
            "recursive_400000_levels",
            literal(&recursive, &with([vec![2u8; 400_000], vec![0]].concat())),
        ),
        (
            "longs_3000",
            literal(
                &longs,
                &with([zigzag(3000), vec![0; 3000], vec![0]].concat()),
            ),
        ),
        (
            "block_claims_16m",
            literal(&longs, &with([block.clone(), vec![2; 50]].concat())),
        ),
        ("fanout", literal(&leading(schemas, fanout()), survey)),
        (
            "tags",
            literal(
                &tags,
                &with(
                    [
                        zigzag(2),
                        zigzag(3),
                        b"vip".to_vec(),
                        zigzag(1),
                        b"x".to_vec(),
                        vec![0],
                    ]
                    .concat(),
                ),
            ),
        ),
    ]
    .into_iter()
    .map(|(n, b)| (n.to_string(), b))
    .collect()
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let evs = generate(
        &GenConfig {
            seed: 5,
            count: 400,
            ..GenConfig::default()
        },
        WireFormat::Confluent,
    );
    let enc = Encoder {
        format: WireFormat::Confluent,
        schemas: schemas.clone(),
        ids: (1, 2),
    };
    let bare = Encoder {
        format: WireFormat::Avro,
        schemas: schemas.clone(),
        ids: (1, 2),
    };
    let survey = evs
        .iter()
        .find(|g| g.stream == Stream::Survey && g.malformed.is_none())
        .unwrap_or_else(|| panic!("a survey"));
    let Event::Survey(s) = &survey.event else {
        panic!("a survey")
    };
    let survey_datum = avro::encode(
        &schemas.survey,
        avro::survey_value(s, s.nps_score.map(i32::from), s.csat_score.map(i32::from)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<(String, Vec<u8>)> = decode_seeds(&schemas, &survey_datum)
        .into_iter()
        .map(|(n, b)| (format!("decode/{n}"), b))
        .collect();
    for (k, g) in evs.iter().take(6).enumerate() {
        let e = |x: &Encoder| x.encode(g).unwrap_or_else(|e| panic!("{e}"));
        out.push((format!("framing/confluent_{k}"), e(&enc)));
        out.push((format!("framing/avro_{k}"), e(&bare)));
    }
    out.push((
        "framing/unknown_id".into(),
        frame_confluent(99, &survey_datum),
    ));
    let v = Config::default()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut core = Core::new(v.settings.clone());
    for (n, g) in evs.iter().enumerate() {
        let payload = enc.encode(g).unwrap_or_else(|e| panic!("{e}"));
        let _ = core.process(0, n as i64, g.event.clone(), &payload);
    }
    let ps = core.partition(0).unwrap_or_else(|| panic!("partition 0"));
    let src = SourceIdentity::default();
    let full = format::encode(ps, &v.settings, &src).unwrap_or_else(|e| panic!("{e}"));
    let header = format::header(&v.settings, &src).unwrap_or_else(|e| panic!("{e}"));
    out.push(("checkpoint/full".into(), full.clone()));
    out.push((
        "checkpoint/state_only".into(),
        full[header.len()..].to_vec(),
    ));
    let example = include_str!("../../config/pipeline.toml");
    out.push(("config/example".into(), example.as_bytes().to_vec()));
    for (n, text) in [
        ("typo", "[clickhouse]\nurl = \"http://x\"\npasswrd = \"s3cretA9\"\n"),
        ("unterminated", "[clickhouse]\npassword = \"s3cretB9\n"),
        ("secret_url", "[clickhouse]\nurl = \"http://u:s3cretC9@h:8123\"\npassword = \"s3cretD9\"\n[sink]\nperiod = \"x\"\n"),
        ("kafka_client", "[kafka.client]\n\"ssl.key.password\" = \"s3cretE9\"\n\"sasl.password\" = 7\n"),
    ] {
        out.push((format!("config/{n}"), text.as_bytes().to_vec()));
    }
    out
}

#[test]
fn the_checked_in_seed_corpus_is_what_the_encoders_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = std::env::var("CXP_WRITE_SEEDS").is_ok_and(|v| v == "1");
    for (name, bytes) in seeds() {
        let path = root.join(&name);
        if write {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (CXP_WRITE_SEEDS=1 writes the corpus)",
                path.display()
            )
        });
        assert!(
            on_disk == bytes,
            "{name} differs from what the encoders build (after a change to the config example, \
             the schemas or the checkpoint format, rewrite the seeds: CXP_WRITE_SEEDS=1 cargo \
             test --release --test it fuzz_seeds)"
        );
    }
}
