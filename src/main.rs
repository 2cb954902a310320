//! Command line: `demo` (default; no external services), `run` (the Kafka job),
//! `generate` (produce seeded events to Kafka) and `validate` (check a config file).

use clap::{Parser, Subcommand};

/// mimalloc: the job allocates and frees millions of short strings per second (decoded
/// events, fact rows); glibc's allocator spent more time than the pipeline on that load
/// (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cx_pipeline::codec::registry::Registry;
use cx_pipeline::codec::{Decoder, Schemas, WireFormat};
use cx_pipeline::config::{Config, Validated};
use cx_pipeline::delivery::Flusher;
use cx_pipeline::generator::{generate, Encoder, GenConfig};
use cx_pipeline::metrics::{server, Metrics};
use cx_pipeline::model::Stream;
use cx_pipeline::sink::ClickHouseSink;
use cx_pipeline::source::{embedded, kafka};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    version,
    about = "Streaming customer-experience metrics: NPS, CSAT and AHT per segment"
)]
struct Cli {
    /// TOML config file (defaults apply when omitted; see config/pipeline.toml).
    #[arg(long, short, global = true, env = "CXP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the pipeline in-process on generated events (no Kafka needed).
    Demo {
        #[arg(long, default_value_t = 60_000)]
        events: usize,
        /// Events per second fed to the pipeline (0 = as fast as possible).
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Consume from Kafka, write to ClickHouse, serve /metrics.
    Run {
        /// Exit once every assigned partition is fully consumed (batch/backfill runs).
        #[arg(long)]
        until_end: bool,
    },
    /// Produce seeded, realistic events to the configured topics.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Messages per second (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 0.01)]
        malformed_share: f64,
        #[arg(long, default_value_t = 0.003)]
        late_share: f64,
        /// Event time of the first ticket, ms since the epoch (default: now minus the span).
        #[arg(long)]
        start_ms: Option<i64>,
    },
    /// Check a config file and print every problem.
    Validate,
    /// Watch every segment's NPS in ClickHouse and deliver drop alerts (README, Alerts).
    Detect {
        /// Evaluate every complete hour once and exit (backfills, tests).
        #[arg(long)]
        once: bool,
    },
    /// Score the detector and today's Prometheus rule on a simulated year with known drops.
    SimulateDetector {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[arg(long, default_value_t = 80)]
        teams: usize,
        #[arg(long, default_value_t = 24.0)]
        agents_per_team: f64,
        #[arg(long, default_value_t = 400)]
        drops: usize,
        /// Also write the markdown report here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let validated = match cfg.validate() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = install_shutdown(&rt);
    let command = cli.command.unwrap_or(Cmd::Demo {
        events: 60_000,
        rate: 5_000,
        seed: 42,
        partitions: 4,
    });
    let result = match command {
        Cmd::Validate => {
            println!("configuration is valid");
            Ok(())
        }
        Cmd::Demo {
            events,
            rate,
            seed,
            partitions,
        } => rt.block_on(demo(cfg, validated, events, rate, seed, partitions, stop)),
        Cmd::Run { until_end } => run(&rt, cfg, validated, until_end, stop),
        Cmd::Detect { once } => rt.block_on(cx_pipeline::detect::service::run(
            cfg, validated, once, stop,
        )),
        Cmd::SimulateDetector {
            seed,
            days,
            teams,
            agents_per_team,
            drops,
            out,
        } => {
            let sim = cx_pipeline::detect::sim::SimConfig {
                seed,
                days,
                teams,
                agents_per_team,
                drops,
                settings: validated.detector.stats.clone(),
                ..Default::default()
            };
            cx_pipeline::detect::sim::report::print(&sim, out.as_deref())
        }
        Cmd::Generate {
            count,
            seed,
            rate,
            malformed_share,
            late_share,
            start_ms,
        } => rt.block_on(produce(
            cfg,
            count,
            seed,
            rate,
            malformed_share,
            late_share,
            start_ms,
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// One flag for SIGINT and SIGTERM; the loops check it between batches. The handlers are
/// registered before this returns (not in a task that runs later), right after the runtime
/// starts: a stop that arrives while the job connects must still end in a clean exit.
fn install_shutdown(rt: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    rt.block_on(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::spawn(async move {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                tracing::info!("signal received; stopping after the current batch");
                flag.store(true, Ordering::Relaxed);
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            flag.store(true, Ordering::Relaxed);
        });
    });
    stop
}

/// The demo's synthetic rows go to `clickhouse.demo_database`, never next to real results: a
/// database that is the pipeline's, or that holds pipeline checkpoints, is refused.
async fn demo_sink(cfg: &Config, metrics: &Arc<Metrics>) -> Result<ClickHouseSink, String> {
    let ch = &cfg.clickhouse;
    if ch.demo_database == ch.database {
        return Err(format!(
            "clickhouse.demo_database = {:?} is the pipeline's database (clickhouse.database); the demo writes synthetic rows and needs a database of its own",
            ch.demo_database
        ));
    }
    // Checked before anything is created or written there.
    let probe = cx_pipeline::sink::clickhouse::base_client(ch)?;
    let tables: u64 = probe
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'checkpoints'")
        .bind(&ch.demo_database)
        .fetch_one()
        .await
        .map_err(|e| format!("{}: {e}", ch.url))?;
    let real: u64 = if tables > 0 {
        probe
            .query(&format!(
                "SELECT count() FROM {}.checkpoints",
                ch.demo_database
            ))
            .fetch_one()
            .await
            .map_err(|e| format!("{}: {e}", ch.url))?
    } else {
        0
    };
    if real > 0 {
        return Err(format!(
            "clickhouse.demo_database = {:?} holds pipeline checkpoints: it has real results; point the demo at a database of its own",
            ch.demo_database
        ));
    }
    let mut demo_cfg = ch.clone();
    demo_cfg.database = ch.demo_database.clone();
    let sink = ClickHouseSink::connect(&demo_cfg, metrics.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok(sink)
}

async fn start_metrics(cfg: &Config, metrics: &Arc<Metrics>) -> Result<(), String> {
    if cfg.metrics.listen.is_empty() {
        return Ok(());
    }
    let addr = server::serve(&cfg.metrics.listen, metrics.clone())
        .await
        .map_err(|e| format!("metrics.listen = {:?}: {e}", cfg.metrics.listen))?;
    tracing::info!(%addr, "serving /metrics");
    Ok(())
}

async fn demo(
    cfg: Config,
    v: Validated,
    events: usize,
    rate: u64,
    seed: u64,
    partitions: i32,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let metrics = Arc::new(Metrics::new(cfg.metrics.max_label_sets));
    start_metrics(&cfg, &metrics).await?;
    let sink = if cfg.clickhouse.url.is_empty() {
        None
    } else {
        Some(Arc::new(demo_sink(&cfg, &metrics).await?))
    };
    let flusher = Flusher {
        sink,
        metrics,
        groupings: v.settings.window.groupings.clone(),
    };
    let opts = embedded::DemoOptions {
        events,
        rate,
        seed,
        partitions,
        refresh: Duration::from_secs(1),
    };
    let started = Instant::now();
    let s = embedded::run(v.settings, flusher, opts, &stop).await?;
    tracing::info!(
        events = s.processed,
        seconds = started.elapsed().as_secs_f64(),
        "demo finished"
    );
    Ok(())
}

fn run(
    rt: &tokio::runtime::Runtime,
    cfg: Config,
    v: Validated,
    until_end: bool,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    if cfg.clickhouse.url.is_empty() {
        return Err("clickhouse.url (or CXP_CLICKHOUSE_URL) is required for `run`; try `demo` for a run without services".into());
    }
    let metrics = Arc::new(Metrics::new(cfg.metrics.max_label_sets));
    let (sink, schemas) = rt.block_on(async {
        start_metrics(&cfg, &metrics).await?;
        let sink = ClickHouseSink::connect(&cfg.clickhouse, metrics.clone())
            .await
            .map_err(|e| e.to_string())?;
        let schemas = Schemas::from_dir(cfg.codec.schemas_dir.as_deref())?;
        Ok::<_, String>((sink, schemas))
    })?;
    let registry = registry(&cfg)?;
    let decoder = Decoder::new(
        cfg.codec.format,
        schemas,
        registry,
        Some(rt.handle().clone()),
    );
    let mut job = kafka::KafkaJob {
        config: cfg,
        validated: v,
        metrics,
        sink: Arc::new(sink),
        decoder,
        runtime: rt.handle().clone(),
        bounded: until_end,
    };
    let summary = job.run(stop).map_err(|e| e.to_string())?;
    tracing::info!(
        consumed = summary.consumed,
        dead_lettered = summary.dead_lettered,
        late = summary.late,
        "pipeline stopped cleanly"
    );
    Ok(())
}

fn registry(cfg: &Config) -> Result<Option<Registry>, String> {
    let Some(url) = cfg
        .codec
        .schema_registry_url
        .as_deref()
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    let r = Registry::new(
        url,
        cfg.codec.schema_registry_user.as_deref(),
        cfg.codec.schema_registry_password.as_ref(),
    );
    match cfg.codec.schema_registry_ca_file.as_deref() {
        Some(ca) => r.with_ca_file(ca).map(Some),
        None => Ok(Some(r)),
    }
}

async fn produce(
    cfg: Config,
    count: usize,
    seed: u64,
    rate: u64,
    malformed: f64,
    late: f64,
    start_ms: Option<i64>,
) -> Result<(), String> {
    let schemas = Schemas::from_dir(cfg.codec.schemas_dir.as_deref())?;
    let ids = match cfg.codec.format {
        WireFormat::Avro => (0, 0),
        WireFormat::Confluent => {
            let r = registry(&cfg)?
                .ok_or("codec.schema_registry_url is required for the confluent format")?;
            (
                r.register(
                    &format!("{}-value", cfg.kafka.survey_topic),
                    &schemas.survey_json,
                )
                .await?,
                r.register(
                    &format!("{}-value", cfg.kafka.interaction_topic),
                    &schemas.interaction_json,
                )
                .await?,
            )
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let gen_cfg = GenConfig {
        seed,
        count,
        start_ms: start_ms.unwrap_or(now - count as i64 * 1_300),
        malformed_share: malformed,
        late_share: late,
        ..GenConfig::default()
    };
    let events = generate(&gen_cfg, cfg.codec.format);
    let enc = Encoder {
        format: cfg.codec.format,
        schemas,
        ids,
    };
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.brokers)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true");
    for (k, v) in cfg.kafka_client() {
        c.set(k, v);
    }
    let producer: ThreadedProducer<_> = c.create().map_err(|e| format!("producer: {e}"))?;
    let started = Instant::now();
    for (n, g) in events.iter().enumerate() {
        let payload = enc.encode(g).map_err(|e| e.to_string())?;
        let topic = match g.stream {
            Stream::Survey => &cfg.kafka.survey_topic,
            Stream::Interaction => &cfg.kafka.interaction_topic,
        };
        let mut rec = BaseRecord::<str, [u8]>::to(topic)
            .key(g.key.as_str())
            .payload(&payload);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((e, r))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(format!("produce: {e}")),
            }
        }
        if rate > 0 {
            let due = Duration::from_secs_f64((n + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| format!("flush: {e}"))?;
    let bad = events.iter().filter(|g| g.malformed.is_some()).count();
    tracing::info!(
        messages = events.len(),
        malformed = bad,
        seconds = started.elapsed().as_secs_f64(),
        "generated"
    );
    Ok(())
}
