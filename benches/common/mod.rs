//! Shared by the broker benchmarks (e2e.rs, soak.rs, checkpoints.rs): settings from the environment, a
//! fresh topic set and pipeline config per run, topic creation and a producer.

#![allow(dead_code)]

use cx_pipeline::codec::{Schemas, WireFormat};
use cx_pipeline::config::Config;
use cx_pipeline::generator::{generate, Encoder, GenConfig};
use cx_pipeline::model::Stream;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn num(name: &str, default: usize) -> usize {
    env_or(name, &default.to_string())
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn share(name: &str, default: f64) -> f64 {
    env_or(name, &default.to_string())
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[derive(Clone)]
pub struct Setup {
    pub brokers: String,
    pub clickhouse: String,
    pub bin: String,
    pub id: String,
    pub topics: [String; 3],
    /// Appended to every pipeline config (TOML).
    pub extra: String,
}

impl Setup {
    /// From the environment; None (with a note) when the services are not configured.
    pub fn from_env(name: &str) -> Option<Setup> {
        let (Ok(brokers), Ok(clickhouse)) = (
            std::env::var("CXP_KAFKA_BROKERS"),
            std::env::var("CXP_CLICKHOUSE_URL"),
        ) else {
            eprintln!("{name} bench skipped: set CXP_KAFKA_BROKERS and CXP_CLICKHOUSE_URL (scripts/bench-e2e.sh does)");
            return None;
        };
        let target = env_or("CARGO_TARGET_DIR", "target");
        let id = format!("{name}-{}", std::process::id());
        Some(Setup {
            brokers,
            clickhouse,
            bin: env_or("CXP_BIN", &format!("{target}/release/cx-pipeline")),
            topics: [
                format!("{id}-surveys"),
                format!("{id}-interactions"),
                format!("{id}-dlq"),
            ],
            id,
            extra: String::new(),
        })
    }

    /// Writes the config of one run to a temp file.
    pub fn config_file(&self, run: &str) -> std::path::PathBuf {
        let file = std::env::temp_dir().join(format!("{}-{run}.toml", self.id));
        std::fs::write(&file, self.toml(run)).unwrap_or_else(|e| panic!("{e}"));
        file
    }

    /// The pipeline's config for one run: a fresh consumer group and database.
    pub fn toml(&self, run: &str) -> String {
        format!(
            r#"
[kafka]
brokers = "{}"
group_id = "{}-{run}"
survey_topic = "{}"
interaction_topic = "{}"
dead_letter_topic = "{}"
[codec]
format = "avro"
[clickhouse]
url = "{}"
database = "{}_{run}"
[metrics]
listen = ""
{}
"#,
            self.brokers,
            self.id,
            self.topics[0],
            self.topics[1],
            self.topics[2],
            self.clickhouse,
            self.id.replace('-', "_"),
            self.extra,
        )
    }

    pub fn config(&self, run: &str) -> Config {
        toml::from_str(&self.toml(run)).unwrap_or_else(|e| panic!("{e}"))
    }
}

pub fn create_topics(s: &Setup, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap_or_else(|e| panic!("admin: {e}"));
    let new: Vec<NewTopic<'_>> = s
        .topics
        .iter()
        .enumerate()
        .map(|(i, t)| {
            NewTopic::new(
                t,
                if i < 2 { partitions } else { 1 },
                TopicReplication::Fixed(1),
            )
        })
        .collect();
    let res = futures::executor::block_on(admin.create_topics(&new, &AdminOptions::new()))
        .unwrap_or_else(|e| panic!("create topics: {e}"));
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// Produces generated events, at `rate` messages/s when non-zero; returns (messages,
/// payload bytes).
pub fn produce(s: &Setup, count: usize, rate: u64) -> (usize, usize) {
    produce_part(s, count, 0..count, rate)
}

/// Produces `part` of the `count` events the generator makes (a backlog, then the live
/// input that continues it in event time), at `rate` messages/s when non-zero.
pub fn produce_part(
    s: &Setup,
    count: usize,
    part: std::ops::Range<usize>,
    rate: u64,
) -> (usize, usize) {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let enc = Encoder {
        format: WireFormat::Avro,
        schemas,
        ids: (0, 0),
    };
    // CXP_BENCH_PER_DAY: messages per day of event time (the generator's default is about
    // 66,000); tickets come faster and customers grow with it.
    let d = GenConfig::default();
    let ratio = num("CXP_BENCH_PER_DAY", 66_461) as f64 / 66_461.0;
    let events = generate(
        &GenConfig {
            count,
            malformed_share: share("CXP_BENCH_MALFORMED", 0.0),
            late_share: share("CXP_BENCH_LATE", 0.0),
            ticket_gap_ms: ((d.ticket_gap_ms as f64 / ratio).round() as i64).max(1),
            customers: ((d.customers as f64 * ratio).round() as u64).max(1),
            ..d
        },
        WireFormat::Avro,
    );
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"));
    let mut bytes = 0;
    let start = Instant::now();
    let events = events.get(part).unwrap_or_default();
    for (n, g) in events.iter().enumerate() {
        if rate > 0 && n % 100 == 0 {
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let payload = enc.encode(g).unwrap_or_else(|e| panic!("{e}"));
        bytes += payload.len();
        let topic = match g.stream {
            Stream::Survey => &s.topics[0],
            Stream::Interaction => &s.topics[1],
        };
        let mut rec = BaseRecord::to(topic).key(g.key.as_str()).payload(&payload);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("flush: {e}"));
    (events.len(), bytes)
}
