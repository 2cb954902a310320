//! The embedded default: the same core fed in-process by the generator, no external
//! services. Prints a refreshing per-segment NPS/CSAT/AHT table and serves /metrics; writes
//! to ClickHouse too when a URL is configured.

use crate::codec::{DecodeError, Decoder, SchemaError, Schemas, WireFormat};
use crate::generator::{generate, hash, Encoder, GenConfig};
use crate::ingest::{Ingest, Message};
use crate::model::{Stream, UNATTRIBUTED, UNKNOWN};
use crate::pipeline::partition::Outputs;
use crate::pipeline::{Core, Settings};
use crate::shutdown::Shutdown;
use crate::sink::{RowWriter, SinkError};
use crate::window::aggregate::Partial;
use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct DemoOptions {
    pub events: usize,
    pub rate: u64,
    pub seed: u64,
    pub partitions: i32,
    pub refresh: Duration,
}

#[derive(Debug, Default)]
pub struct DemoSummary {
    pub processed: u64,
    pub dead_lettered: u64,
    pub late: u64,
    pub segments: BTreeMap<(String, String), Partial>,
}

impl DemoSummary {
    fn fold(&mut self, out: &Outputs) {
        for f in &out.surveys {
            let s = &f.resolved.survey;
            let a = f.resolved.attribution.as_ref();
            let team = a.map_or(UNATTRIBUTED, |a| a.team.as_str());
            let bucket = a.map_or(UNATTRIBUTED, |a| a.bucket.as_str());
            for key in [
                ("overall", ""),
                ("region", s.region.as_deref().unwrap_or(UNKNOWN)),
                ("team", team),
                ("bucket", bucket),
            ] {
                self.entry(key)
                    .add_survey(s.nps_score, s.csat_score, a.is_some());
            }
        }
        for f in &out.contacts {
            let i = &f.interaction;
            for key in [
                ("overall", ""),
                ("team", i.team.as_str()),
                ("bucket", i.bucket.as_str()),
            ] {
                self.entry(key)
                    .add_contact(i.talk_ms as u64, i.hold_ms as u64, i.wrap_ms as u64);
            }
        }
    }

    fn entry(&mut self, (g, v): (&str, &str)) -> &mut Partial {
        self.segments
            .entry((g.to_string(), v.to_string()))
            .or_default()
    }

    pub fn render(&self) -> String {
        let f =
            |x: Option<f64>, w: usize| x.map_or(format!("{:>w$}", "-"), |v| format!("{v:>w$.1}"));
        let mut s = format!(
            "events processed {}  dead-lettered {}  too late {}\n{:<8} {:<14} {:>9} {:>7} {:>6} {:>7} {:>9} {:>8}\n",
            self.processed, self.dead_lettered, self.late, "segment", "value", "responses", "NPS", "+/-", "CSAT%", "contacts", "AHT s"
        );
        for ((g, v), p) in &self.segments {
            s.push_str(&format!(
                "{:<8} {:<14} {:>9} {} {} {} {:>9} {}\n",
                g,
                v,
                p.responses,
                f(p.nps(), 7),
                f(p.nps_margin_of_error(), 6),
                f(p.csat_pct(), 7),
                p.contacts,
                f(p.aht_s(), 8)
            ));
        }
        s
    }
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Schemas(#[from] SchemaError),
    #[error("encoding a generated event: {0}")]
    Encode(apache_avro::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// The generated input, encoded as the Kafka job would receive it, and the decoder for it.
struct Feed {
    events: Vec<crate::generator::GenEvent>,
    enc: Encoder,
    dec: Decoder,
}

impl Feed {
    fn new(opts: &DemoOptions) -> Result<Self, DemoError> {
        let schemas = Schemas::embedded()?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let gen_cfg = GenConfig {
            seed: opts.seed,
            count: opts.events,
            // Tickets every ~3 s of event time, ending about now.
            start_ms: now_ms - (opts.events as i64) * 1_300,
            ..GenConfig::default()
        };
        let events = generate(&gen_cfg, WireFormat::Confluent);
        let enc = Encoder {
            format: WireFormat::Confluent,
            schemas: schemas.clone(),
            ids: (1, 2),
        };
        let mut dec = Decoder::new(WireFormat::Confluent, schemas.clone(), None);
        dec.preload(Stream::Survey, 1, schemas.survey.clone());
        dec.preload(Stream::Interaction, 2, schemas.interaction.clone());
        dec.preload_unknown(Stream::Survey, crate::generator::UNKNOWN_SCHEMA_ID);
        dec.preload_unknown(Stream::Interaction, crate::generator::UNKNOWN_SCHEMA_ID);
        Ok(Feed { events, enc, dec })
    }
}

/// Feeds the generated events through the ingest step at `opts.rate`, refreshing the table
/// every `opts.refresh`, until the events end or `stop` is set.
pub async fn run(
    settings: Settings,
    writer: RowWriter,
    opts: DemoOptions,
    stop: &Shutdown,
) -> Result<DemoSummary, DemoError> {
    let Feed {
        events,
        enc,
        mut dec,
    } = Feed::new(&opts)?;
    let mut core = Core::new(settings);
    let mut ingest = Ingest::new(
        writer.metrics.clone(),
        [
            Stream::Survey.label().into(),
            Stream::Interaction.label().into(),
        ],
    );
    let mut summary = DemoSummary::default();
    let mut offsets: HashMap<(Stream, i32), i64> = HashMap::new();
    let tick = Duration::from_millis(100);
    let per_tick = ((opts.rate as f64) * tick.as_secs_f64()).max(1.0) as usize;
    let mut last_refresh = Instant::now();
    let mut it = events.iter();
    let mut done = false;
    while !done && !stop.is_set() {
        let tick_start = Instant::now();
        for _ in 0..per_tick {
            let Some(g) = it.next() else {
                done = true;
                break;
            };
            let p = (hash(&g.key) % opts.partitions.max(1) as u64) as i32;
            let off = offsets.entry((g.stream, p)).or_default();
            let offset = *off;
            *off += 1;
            let payload = enc.encode(g).map_err(DemoError::Encode)?;
            let msg = Message {
                stream: g.stream,
                partition: p,
                offset,
                // No broker here: only the fixed event-time bounds apply.
                timestamp_ms: None,
                payload: &payload,
            };
            // Schemas are preloaded, so nothing here waits on a registry.
            ingest.ingest(&mut dec, &mut core, &msg)?;
        }
        if done || last_refresh.elapsed() >= opts.refresh {
            refresh(&mut core, &writer, &ingest, &mut summary, done).await?;
            last_refresh = Instant::now();
        }
        if let Some(rest) = tick.checked_sub(tick_start.elapsed()) {
            if opts.rate > 0 {
                tokio::time::sleep(rest).await;
            }
        }
    }
    Ok(summary)
}

/// Writes what the core has produced, folds it into the table and prints the table.
async fn refresh(
    core: &mut Core,
    writer: &RowWriter,
    ingest: &Ingest,
    summary: &mut DemoSummary,
    done: bool,
) -> Result<(), DemoError> {
    if done {
        core.finish_all();
    } else {
        core.advance_all();
    }
    let out = core.take_outputs();
    writer.write(&out, &Default::default()).await?;
    writer.metrics.record_business(&out);
    summary.fold(&out);
    let t = ingest.tally;
    (summary.processed, summary.dead_lettered, summary.late) =
        (t.consumed, t.dead_lettered, t.late);
    let text = summary.render();
    let mut so = std::io::stdout().lock();
    let _ = if std::io::stdout().is_terminal() {
        write!(so, "\x1b[2J\x1b[H{text}")
    } else {
        writeln!(so, "{text}")
    };
    Ok(())
}
