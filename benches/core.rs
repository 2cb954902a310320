//! In-process throughput, stage by stage and for the whole core path (decode + join +
//! windows + aggregates), over batches of generated realistic events (12-15 fields, about
//! 150 bytes). No broker, no sink: those are measured end to end by scripts/bench-e2e.sh.
//!
//! Run: cargo bench --bench core            (all)
//!      cargo bench --bench core -- core_path   (one group)
//!
//! Data density matters for the window stage: `sparse` is the generator's default (a new
//! ticket every 3 s of event time, a small contact centre), `dense` one every 20 ms (a
//! large one, or many merged). Flushes (advance + take outputs, which builds every changed
//! window row) happen every 50,000 events; the job flushes every 2 s or 100,000 rows.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use cx_pipeline::codec::{Decoder, Schemas, WireFormat};
use cx_pipeline::config::Config;
use cx_pipeline::generator::{generate, hash, Encoder, GenConfig};
use cx_pipeline::join::{JoinState, Pending};
use cx_pipeline::metrics::Metrics;
use cx_pipeline::model::{Event, Stream};
use cx_pipeline::pipeline::{dims, Core, Settings};
use cx_pipeline::window::WindowState;

const EVENTS: usize = 200_000;
const FLUSH_EVERY: usize = 50_000;

struct Msg {
    stream: Stream,
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
    event: Event,
}

fn settings() -> Settings {
    Config::default()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
        .settings
}

fn messages(schemas: &Schemas, ticket_gap_ms: i64) -> Vec<Msg> {
    let events = generate(
        &GenConfig {
            count: EVENTS,
            malformed_share: 0.0,
            late_share: 0.0,
            ticket_gap_ms,
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
    events
        .into_iter()
        .map(|g| {
            let partition = (hash(&g.key) % 4) as i32;
            let o = offsets.entry((g.stream, partition)).or_insert(0i64);
            *o += 1;
            Msg {
                stream: g.stream,
                partition,
                offset: *o - 1,
                payload: enc.encode(&g).unwrap_or_else(|e| panic!("{e}")),
                event: g.event,
            }
        })
        .collect()
}

fn decoder(schemas: &Schemas, reference: bool) -> Decoder {
    let mut d = Decoder::new(WireFormat::Confluent, schemas.clone(), None);
    if reference {
        d = d.reference_only();
    }
    d.preload(Stream::Survey, 1, schemas.survey.clone());
    d.preload(Stream::Interaction, 2, schemas.interaction.clone());
    d
}

fn decode(c: &mut Criterion) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let msgs = messages(&schemas, 3_000);
    let bytes: usize = msgs.iter().map(|m| m.payload.len()).sum();
    eprintln!("mean payload: {} bytes", bytes / msgs.len());
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.sample_size(10);
    for (name, reference) in [("fast", false), ("apache_avro", true)] {
        let mut d = decoder(&schemas, reference);
        g.bench_function(name, |b| {
            b.iter(|| {
                msgs.iter()
                    .filter(|m| d.decode(m.stream, &m.payload).is_ok())
                    .count()
            })
        });
    }
    g.finish();
}

/// The join alone: index contacts, park surveys, settle them as the horizon moves.
fn join(c: &mut Criterion) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let msgs = messages(&schemas, 3_000);
    let cfg = settings().join;
    let mut g = c.benchmark_group("join");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.sample_size(10);
    g.bench_function("index_and_settle", |b| {
        b.iter_batched(
            || msgs.iter().map(|m| m.event.clone()).collect::<Vec<_>>(),
            |events| {
                let mut j = JoinState::default();
                let mut settled = Vec::new();
                let mut horizon = i64::MIN;
                for (n, ev) in events.into_iter().enumerate() {
                    match ev {
                        Event::Interaction(i) => {
                            j.add_contact(&i, horizon, &cfg, &mut Vec::new());
                            horizon = horizon.max(i.ended_at_ms - 330_000);
                        }
                        Event::Survey(s) => {
                            let lo_ms = s.submitted_at_ms - cfg.lookback_ms;
                            let p = Pending {
                                survey: s,
                                offset: n as i64,
                                late: false,
                                lo_ms,
                            };
                            j.park(p, &cfg);
                        }
                    }
                    if n % 1000 == 999 {
                        settled.extend(j.resolve_until(horizon, &cfg));
                        j.evict_before(horizon - cfg.lookback_ms);
                        settled.clear();
                    }
                }
                j.contacts_len()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The window stage alone: fold every event into 3 sizes x 7 grouping sets, emitting
/// changed rows every FLUSH_EVERY events.
fn window(c: &mut Criterion) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let st = settings();
    let mut g = c.benchmark_group("window");
    g.sample_size(10);
    for (density, gap) in [("sparse", 3_000), ("dense", 20)] {
        let msgs = messages(&schemas, gap);
        g.throughput(Throughput::Elements(msgs.len() as u64));
        g.bench_function(density, |b| {
            b.iter(|| {
                let mut w = WindowState::default();
                let mut out = Vec::new();
                let mut rows = 0;
                for (n, m) in msgs.iter().enumerate() {
                    match &m.event {
                        Event::Interaction(i) => {
                            w.add(i.ended_at_ms, &dims::contact(i), &st.window, |p| {
                                p.add_contact(i.talk_ms as u64, i.hold_ms as u64, 0)
                            })
                        }
                        Event::Survey(s) => {
                            w.add(s.submitted_at_ms, &dims::survey(s, None), &st.window, |p| {
                                p.add_survey(s.nps_score, s.csat_score, false)
                            })
                        }
                    }
                    if n % FLUSH_EVERY == FLUSH_EVERY - 1 {
                        w.drain_dirty(&st.window, |u| out.push(u));
                        rows += out.len();
                        out.clear();
                    }
                }
                w.close_until(i64::MAX, &st.window, |u| out.push(u));
                rows + out.len()
            })
        });
    }
    g.finish();
}

/// How the window stage grows with grouping sets (dense data, 3 sizes).
fn window_groupings(c: &mut Criterion) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let st = settings();
    let msgs = messages(&schemas, 20);
    let mut g = c.benchmark_group("window_grouping_sets");
    g.sample_size(10);
    g.throughput(Throughput::Elements(msgs.len() as u64));
    for n in [1usize, 3, 7] {
        let mut cfg = st.window.clone();
        cfg.groupings.truncate(n);
        g.bench_function(format!("dense_{n}"), |b| {
            b.iter(|| {
                let mut w = WindowState::default();
                let mut rows = 0;
                for (i, m) in msgs.iter().enumerate() {
                    if let Event::Interaction(x) = &m.event {
                        w.add(x.ended_at_ms, &dims::contact(x), &cfg, |p| {
                            p.add_contact(x.talk_ms as u64, x.hold_ms as u64, 0)
                        });
                    }
                    if i % FLUSH_EVERY == FLUSH_EVERY - 1 {
                        w.drain_dirty(&cfg, |_| rows += 1);
                    }
                }
                w.close_until(i64::MAX, &cfg, |_| rows += 1);
                rows
            })
        });
    }
    g.finish();
}

/// The whole core path as the Kafka job drives it, plus the per-flush metrics update.
fn core_path(c: &mut Criterion) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let st = settings();
    let mut g = c.benchmark_group("core_path");
    g.sample_size(10);
    for (density, gap) in [("sparse", 3_000), ("dense", 20)] {
        let msgs = messages(&schemas, gap);
        g.throughput(Throughput::Elements(msgs.len() as u64));
        let run = |d: &mut Decoder, core: &mut Core, metrics: Option<&Metrics>| {
            let mut rows = 0;
            for (n, m) in msgs.iter().enumerate() {
                if let Ok(ev) = d.decode(m.stream, &m.payload) {
                    let _ = core.process(m.partition, m.offset, ev, &m.payload);
                }
                if n % FLUSH_EVERY == FLUSH_EVERY - 1 {
                    core.advance_all();
                    let out = core.take_outputs();
                    if let Some(metrics) = metrics {
                        metrics.record_business(&out);
                    }
                    rows += out.windows.len();
                }
            }
            core.finish_all();
            rows + core.take_outputs().windows.len()
        };
        {
            let (mut d, mut core) = (decoder(&schemas, false), Core::new(st.clone()));
            eprintln!(
                "{density}: {} window rows emitted for {} events",
                run(&mut d, &mut core, None),
                msgs.len()
            );
        }
        g.bench_function(format!("{density}_decode_join_window"), |b| {
            b.iter_batched(
                || (decoder(&schemas, false), Core::new(st.clone())),
                |(mut d, mut core)| run(&mut d, &mut core, None),
                BatchSize::PerIteration,
            )
        });
        let metrics = Metrics::new(10_000);
        g.bench_function(format!("{density}_with_metrics"), |b| {
            b.iter_batched(
                || (decoder(&schemas, false), Core::new(st.clone())),
                |(mut d, mut core)| run(&mut d, &mut core, Some(&metrics)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, decode, join, window, window_groupings, core_path);
criterion_main!(benches);
