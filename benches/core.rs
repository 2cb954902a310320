//! In-process throughput of the core path: decode (Confluent framing, apache-avro) + join +
//! windows + aggregates, over a batch of generated realistic events. No broker, no sink.
//! Run: cargo bench --bench core

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use cx_pipeline::codec::{Decoder, Schemas, WireFormat};
use cx_pipeline::config::Config;
use cx_pipeline::generator::{generate, hash, Encoder, GenConfig};
use cx_pipeline::model::Stream;
use cx_pipeline::pipeline::Core;

fn core_path(c: &mut Criterion) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let settings = Config::default()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
        .settings;
    let events = generate(
        &GenConfig {
            count: 50_000,
            malformed_share: 0.0,
            late_share: 0.0,
            ..GenConfig::default()
        },
        WireFormat::Confluent,
    );
    let enc = Encoder {
        format: WireFormat::Confluent,
        schemas: schemas.clone(),
        ids: (1, 2),
    };
    let mut offsets = std::collections::HashMap::new();
    let msgs: Vec<(Stream, i32, i64, Vec<u8>)> = events
        .iter()
        .map(|g| {
            let p = (hash(&g.key) % 4) as i32;
            let o = offsets.entry((g.stream, p)).or_insert(0i64);
            *o += 1;
            (
                g.stream,
                p,
                *o - 1,
                enc.encode(g).unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect();
    let mut group = c.benchmark_group("core_path");
    group.throughput(Throughput::Elements(msgs.len() as u64));
    group.sample_size(10);
    group.bench_function("decode_join_window_50k", |b| {
        b.iter_batched(
            || {
                let mut d = Decoder::new(WireFormat::Confluent, schemas.clone(), None, None);
                d.preload(Stream::Survey, 1, schemas.survey.clone());
                d.preload(Stream::Interaction, 2, schemas.interaction.clone());
                (d, Core::new(settings.clone()))
            },
            |(mut d, mut core)| {
                for (i, (s, p, o, payload)) in msgs.iter().enumerate() {
                    if let Ok(ev) = d.decode(*s, payload) {
                        let _ = core.process(*p, *o, ev);
                    }
                    if i % 5000 == 4999 {
                        core.advance_all();
                        let _ = core.take_outputs();
                    }
                }
                core.finish_all();
                core.take_outputs()
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("decode_reference_50k", |b| {
        let mut d =
            Decoder::new(WireFormat::Confluent, schemas.clone(), None, None).reference_only();
        d.preload(Stream::Survey, 1, schemas.survey.clone());
        d.preload(Stream::Interaction, 2, schemas.interaction.clone());
        b.iter(|| {
            msgs.iter()
                .filter(|(s, _, _, p)| d.decode(*s, p).is_ok())
                .count()
        })
    });
    group.bench_function("decode_only_50k", |b| {
        let mut d = Decoder::new(WireFormat::Confluent, schemas.clone(), None, None);
        d.preload(Stream::Survey, 1, schemas.survey.clone());
        d.preload(Stream::Interaction, 2, schemas.interaction.clone());
        b.iter(|| {
            msgs.iter()
                .filter(|(s, _, _, p)| d.decode(*s, p).is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, core_path);
criterion_main!(benches);
