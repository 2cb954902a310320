//! `cx-pipeline generate`: seeded, realistic events produced to the configured topics, with
//! the reader schemas registered first for the Confluent format.

use super::{registry, AppError};
use crate::codec::{Schemas, WireFormat};
use crate::config::Validated;
use crate::generator::{generate, Encoder, GenConfig};
use crate::model::Stream;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::time::{Duration, Instant};

/// What to produce (the command's flags).
#[derive(Debug, clap::Args)]
pub struct GenerateOptions {
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Messages per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    #[arg(long, default_value_t = 0.01)]
    pub malformed_share: f64,
    #[arg(long, default_value_t = 0.003)]
    pub late_share: f64,
    /// Event time of the first ticket, ms since the epoch (default: now minus the span).
    #[arg(long)]
    pub start_ms: Option<i64>,
    /// Messages per day of event time (the contact centre's size); tickets and customers
    /// scale with it. Default: the generator's own, about 66,000.
    #[arg(long)]
    pub per_day: Option<u64>,
    /// Days of event time to produce: sets `--count` to `--per-day` × days.
    #[arg(long)]
    pub days: Option<u64>,
}

/// Event-time milliseconds per message at the generator's defaults (a ticket every 3 s
/// yields about 2.3 messages).
const MS_PER_MESSAGE: u64 = 1_300;

/// The generator settings `--per-day` and `--days` ask for: (count, ticket gap, customers).
fn scale(o: &GenerateOptions, d: &GenConfig) -> (usize, i64, u64, u64) {
    let default_per_day = 86_400_000 / MS_PER_MESSAGE;
    let per_day = o.per_day.unwrap_or(default_per_day).max(1);
    let count = o.days.map_or(o.count, |days| {
        usize::try_from(per_day.saturating_mul(days)).unwrap_or(usize::MAX)
    });
    let ratio = per_day as f64 / default_per_day as f64;
    let gap = ((d.ticket_gap_ms as f64 / ratio).round() as i64).max(1);
    let customers = ((d.customers as f64 * ratio).round() as u64).max(1);
    let ms_per_message = (86_400_000 / per_day).max(1);
    (count, gap, customers, ms_per_message)
}

/// Registers both reader schemas under the topics' `-value` subjects; their ids.
async fn register(v: &Validated, schemas: &Schemas) -> Result<(u32, u32), AppError> {
    if v.codec.format == WireFormat::Avro {
        return Ok((0, 0));
    }
    let r = registry(&v.codec)?.ok_or_else(|| {
        AppError::Setting("codec.schema_registry_url is required for the confluent format".into())
    })?;
    let k = &v.kafka;
    Ok((
        r.register(&format!("{}-value", k.survey_topic), &schemas.survey_json)
            .await?,
        r.register(
            &format!("{}-value", k.interaction_topic),
            &schemas.interaction_json,
        )
        .await?,
    ))
}

pub async fn run(v: Validated, o: GenerateOptions) -> Result<(), AppError> {
    let schemas = Schemas::from_dir(v.codec.schemas_dir.as_deref())?;
    let ids = register(&v, &schemas).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let (count, ticket_gap_ms, customers, ms_per_message) = scale(&o, &GenConfig::default());
    let span = i64::try_from(count)
        .unwrap_or(i64::MAX)
        .saturating_mul(i64::try_from(ms_per_message).unwrap_or(i64::MAX));
    let gen_cfg = GenConfig {
        seed: o.seed,
        count,
        start_ms: o.start_ms.unwrap_or(now.saturating_sub(span)),
        ticket_gap_ms,
        customers,
        malformed_share: o.malformed_share,
        late_share: o.late_share,
        ..GenConfig::default()
    };
    let events = generate(&gen_cfg, v.codec.format);
    let enc = Encoder {
        format: v.codec.format,
        schemas,
        ids,
    };
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &v.kafka.brokers)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true");
    for (k, val) in v.kafka.client_settings() {
        c.set(k, val);
    }
    let producer: ThreadedProducer<_> = c.create().map_err(|source| AppError::Kafka {
        what: "producer",
        source,
    })?;
    let started = Instant::now();
    for (n, g) in events.iter().enumerate() {
        let payload = enc
            .encode(g)
            .map_err(|e| AppError::Demo(crate::source::embedded::DemoError::Encode(e)))?;
        let topic = match g.stream {
            Stream::Survey => &v.kafka.survey_topic,
            Stream::Interaction => &v.kafka.interaction_topic,
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
                Err((source, _)) => {
                    return Err(AppError::Kafka {
                        what: "produce",
                        source,
                    })
                }
            }
        }
        if o.rate > 0 {
            let due = Duration::from_secs_f64((n + 1) as f64 / o.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|source| AppError::Kafka {
            what: "flush",
            source,
        })?;
    let bad = events.iter().filter(|g| g.malformed.is_some()).count();
    tracing::info!(
        messages = events.len(),
        malformed = bad,
        seconds = started.elapsed().as_secs_f64(),
        "generated"
    );
    Ok(())
}
