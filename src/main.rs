//! Command line: `demo` (default; no external services), `run` (the Kafka job),
//! `generate` (produce seeded events to Kafka), `validate` (check a config file), `detect`
//! (the NPS-drop detector) and `simulate-detector`. Only argument parsing lives here; each
//! command is in `cx_pipeline::app`.

use clap::{Parser, Subcommand};
use cx_pipeline::app::{self, AppError};
use cx_pipeline::config::Config;
use cx_pipeline::source::embedded::DemoOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc: the job allocates and frees millions of short strings per second (decoded
/// events, fact rows); glibc's allocator spent more time than the pipeline on that load
/// (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// With --until-end: the input is complete; settle and close everything at its end
        /// and record the state as final (docs/SEMANTICS.md, "Bounded runs").
        #[arg(long = "final", requires = "until_end")]
        complete: bool,
    },
    /// Produce seeded, realistic events to the configured topics.
    Generate(app::generate::GenerateOptions),
    /// Check a config file and print every problem.
    Validate,
    /// Watch every segment's NPS in ClickHouse and deliver drop alerts (docs/ALERTS.md).
    Detect {
        /// Evaluate every complete hour once and exit (backfills, tests).
        #[arg(long)]
        once: bool,
    },
    /// Replay the detector over the recorded answers in ClickHouse (read only), with drops
    /// injected into an in-memory copy: what it would have sent, and how fast it finds a
    /// drop of a given size in this deployment's data (docs/ALERTS.md, *Backtest*).
    Backtest {
        /// Start of the replay (RFC 3339); the first `baseline_gap + min_history` are warm-up.
        #[arg(long)]
        from: String,
        /// End of the replay (RFC 3339); default now.
        #[arg(long)]
        to: Option<String>,
        /// A drop to inject: SEGMENT:POINTS:DURATION@START, e.g.
        /// team=billing:10:72h@2026-11-20T00:00:00Z (repeatable).
        #[arg(long)]
        inject: Vec<String>,
        /// Also write the markdown report here.
        #[arg(long)]
        out: Option<PathBuf>,
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
        /// `default`: the detector's own model; `shifting`: DST, wandering levels, clustered
        /// answers, staff changes, answer lag, slow declines, outages and more decoys
        /// (docs/DETECTOR.md).
        #[arg(long, default_value = "default", value_parser = ["default", "shifting"])]
        world: String,
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
    let validated = match Config::load(cli.config.as_deref()).and_then(|c| c.validate()) {
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
    let stop = app::signals::install(&rt);
    let command = cli.command.unwrap_or(Cmd::Demo {
        events: 60_000,
        rate: 5_000,
        seed: 42,
        partitions: 4,
    });
    let result = dispatch(command, validated, &rt, stop);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command to its end.
fn dispatch(
    command: Cmd,
    validated: cx_pipeline::config::Validated,
    rt: &tokio::runtime::Runtime,
    stop: cx_pipeline::shutdown::Shutdown,
) -> Result<(), AppError> {
    match command {
        Cmd::Validate => {
            println!("configuration is valid");
            Ok(())
        }
        Cmd::Demo {
            events,
            rate,
            seed,
            partitions,
        } => {
            let opts = DemoOptions {
                events,
                rate,
                seed,
                partitions,
                refresh: Duration::from_secs(1),
            };
            rt.block_on(app::demo::run(validated, opts, stop))
        }
        Cmd::Run {
            until_end,
            complete,
        } => app::run::run(rt, validated, until_end, complete, &stop),
        Cmd::Detect { once } => rt
            .block_on(app::detect::run(validated, once, stop))
            .map_err(AppError::from),
        Cmd::Backtest {
            from,
            to,
            inject,
            out,
        } => {
            let time = |key: &str, s: &str| {
                humantime::parse_rfc3339_weak(s)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .and_then(|d| i64::try_from(d.as_secs()).ok())
                    .ok_or_else(|| {
                        AppError::Setting(format!("{key} {s:?} is not an RFC 3339 time"))
                    })
            };
            let from_s = time("--from", &from)?;
            let to_s = match to {
                Some(t) => time("--to", &t)?,
                None => i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                )
                .unwrap_or(i64::MAX),
            };
            let injections = inject
                .iter()
                .map(|s| s.parse())
                .collect::<Result<Vec<_>, String>>()
                .map_err(AppError::Setting)?;
            rt.block_on(app::detect::backtest::run(
                validated,
                from_s,
                to_s,
                injections,
                out.as_deref(),
            ))
            .map_err(AppError::from)
        }
        Cmd::SimulateDetector {
            seed,
            days,
            teams,
            agents_per_team,
            drops,
            world,
            out,
        } => {
            let sim = app::simulate::SimConfig {
                seed,
                days,
                teams,
                agents_per_team,
                drops,
                shifting: world == "shifting",
                settings: validated.detector.params.clone(),
                ..Default::default()
            };
            app::simulate::report::print(&sim, out.as_deref()).map_err(|source| AppError::Io {
                what: "writing the report".into(),
                source,
            })
        }
        Cmd::Generate(opts) => rt.block_on(app::generate::run(validated, opts)),
    }
}
