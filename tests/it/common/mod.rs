//! Helpers for the integration tests: they talk to the real services that
//! scripts/services.sh starts — Apache Kafka (CXP_KAFKA_BROKERS), Apicurio Registry's
//! Confluent-compatible API (CXP_SCHEMA_REGISTRY_URL) and ClickHouse (CXP_CLICKHOUSE_URL).
#![allow(dead_code)]

pub mod check;
pub mod harness;
pub mod hostile;
pub mod oracle;
pub mod proxy;
pub mod registry;

use cx_pipeline::generator::GenEvent;
use cx_pipeline::model::Stream;
use cx_pipeline::sink::rows::WindowRow;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::HashMap;
use std::time::Duration;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh, which starts the broker and ClickHouse"))
}

pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{prefix}_{}_{}", std::process::id(), n % 1_000_000_000)
}

pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap_or_else(|e| panic!("admin: {e}"));
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(1)))
        .collect();
    let res = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap_or_else(|e| panic!("create topics: {e}"));
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
    // CreateTopics answers before every broker's metadata has the topic: wait until it
    // shows each topic with all its partitions led, as a client starting now would see it.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = topics.iter().all(|(t, n)| {
            c.fetch_metadata(Some(t), Duration::from_secs(5))
                .ok()
                .and_then(|md| {
                    md.topics().first().map(|mt| {
                        mt.error().is_none()
                            && mt.partitions().len() == *n as usize
                            && mt
                                .partitions()
                                .iter()
                                .all(|p| p.leader() >= 0 && p.error().is_none())
                    })
                })
                .unwrap_or(false)
        });
        if ready {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "topics {topics:?} not in metadata after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a test producer picks partitions for keyed records.
#[derive(Clone, Copy, Debug)]
pub enum Partitioner {
    /// librdkafka's default (`consistent_random`: CRC32 of the key).
    Librdkafka,
    /// The Java client's (`murmur2_random` in librdkafka: murmur2 of the key).
    Java,
}

impl Partitioner {
    pub fn setting(self) -> &'static str {
        match self {
            Partitioner::Librdkafka => "consistent_random",
            Partitioner::Java => "murmur2_random",
        }
    }
}

/// Produces every event (key = customer id) and returns where each landed.
pub async fn produce(
    brokers: &str,
    topics: (&str, &str),
    events: &[GenEvent],
    enc: &registry::TestEncoder,
) -> Vec<(i32, i64)> {
    produce_with(brokers, topics, events, enc, Partitioner::Librdkafka).await
}

pub async fn produce_with(
    brokers: &str,
    topics: (&str, &str),
    events: &[GenEvent],
    enc: &registry::TestEncoder,
    partitioner: Partitioner,
) -> Vec<(i32, i64)> {
    let producer = producer(brokers, partitioner);
    let mut out = Vec::with_capacity(events.len());
    for chunk in events.chunks(2000) {
        out.extend(send_all(&producer, topics, chunk, enc).await);
    }
    out
}

/// An idempotent producer; create one per test stream (each one's start-up costs a round
/// trip for its producer id).
pub fn producer(brokers: &str, partitioner: Partitioner) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "10")
        .set("enable.idempotence", "true")
        .set("partitioner", partitioner.setting())
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"))
}

/// Sends a chunk of events (key = customer id) and waits for every acknowledgement.
pub async fn send_all(
    producer: &FutureProducer,
    topics: (&str, &str),
    chunk: &[GenEvent],
    enc: &registry::TestEncoder,
) -> Vec<(i32, i64)> {
    let payloads: Vec<Vec<u8>> = chunk.iter().map(|g| enc.encode(g)).collect();
    let futs = chunk.iter().zip(&payloads).map(|(g, p)| {
        let topic = if g.stream == Stream::Survey {
            topics.0
        } else {
            topics.1
        };
        producer.send(
            FutureRecord::to(topic)
                .key(g.key.as_str())
                .payload(p.as_slice()),
            Duration::from_secs(30),
        )
    });
    futures::future::join_all(futs)
        .await
        .into_iter()
        .map(|r| {
            let d = r.unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            (d.partition, d.offset)
        })
        .collect()
}

/// Produces the events in transactions of `size`, aborting every `abort_every`-th one.
/// Returns where each event landed, or None for the events of aborted transactions.
pub async fn produce_transactional(
    brokers: &str,
    topics: (&str, &str),
    events: &[GenEvent],
    enc: &registry::TestEncoder,
    size: usize,
    abort_every: usize,
) -> Vec<Option<(i32, i64)>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "10")
        .set("transactional.id", unique("txn-producer"))
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"));
    let t = Duration::from_secs(30);
    producer
        .init_transactions(t)
        .unwrap_or_else(|e| panic!("init transactions: {e}"));
    let mut out = Vec::with_capacity(events.len());
    for (n, chunk) in events.chunks(size.max(1)).enumerate() {
        producer
            .begin_transaction()
            .unwrap_or_else(|e| panic!("begin: {e}"));
        let landed = send_all(&producer, topics, chunk, enc).await;
        if (n + 1) % abort_every.max(1) == 0 {
            producer
                .abort_transaction(t)
                .unwrap_or_else(|e| panic!("abort: {e}"));
            out.extend(landed.iter().map(|_| None));
        } else {
            producer
                .commit_transaction(t)
                .unwrap_or_else(|e| panic!("commit: {e}"));
            out.extend(landed.into_iter().map(Some));
        }
    }
    out
}

/// Produces one record per key with the given partitioner; returns each key's partition.
pub async fn produce_keys(
    brokers: &str,
    topic: &str,
    keys: &[String],
    partitioner: Partitioner,
) -> HashMap<String, i32> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", partitioner.setting())
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"));
    let futs = keys.iter().map(|k| {
        producer.send(
            FutureRecord::to(topic).key(k.as_str()).payload(k.as_str()),
            Duration::from_secs(30),
        )
    });
    let acks = futures::future::join_all(futs).await;
    keys.iter()
        .zip(acks)
        .map(|(k, r)| {
            let d = r.unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            (k.clone(), d.partition)
        })
        .collect()
}

/// Reads a whole topic; returns (reason, source_topic, source_partition, source_offset).
pub fn read_dead_letters(brokers: &str, topic: &str) -> Vec<(String, String, i32, i64)> {
    read_dead_letter_records(brokers, topic)
        .into_iter()
        .map(|(h, _)| {
            let get = |k: &str| h.get(k).cloned().unwrap_or_default();
            (
                get("reason"),
                get("source_topic"),
                get("source_partition").parse().unwrap_or(-1),
                get("source_offset").parse().unwrap_or(-1),
            )
        })
        .collect()
}

/// Reads a whole topic; returns every record's headers and payload length.
pub fn read_dead_letter_records(
    brokers: &str,
    topic: &str,
) -> Vec<(HashMap<String, String>, usize)> {
    let (c, high) = topic_reader(brokers, topic);
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while (out.len() as i64) < high && std::time::Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(500)) else {
            continue;
        };
        let mut h: HashMap<String, String> = HashMap::new();
        if let Some(hs) = m.headers() {
            for x in hs.iter() {
                h.insert(
                    x.key.to_string(),
                    String::from_utf8_lossy(x.value.unwrap_or_default()).to_string(),
                );
            }
        }
        out.push((h, m.payload().map_or(0, <[u8]>::len)));
    }
    out
}

pub async fn window_rows(url: &str, db: &str) -> Vec<WindowRow> {
    let client = clickhouse::Client::default()
        .with_url(url)
        .with_compression(clickhouse::Compression::None)
        .with_validation(false);
    client
        .query(&format!("SELECT ?fields FROM {db}.window_aggregates FINAL"))
        .fetch_all::<WindowRow>()
        .await
        .unwrap_or_else(|e| panic!("read window_aggregates: {e}"))
}

/// (response_id, attributed interaction_id or '', is_final) of every survey fact.
pub async fn survey_facts(url: &str, db: &str) -> Vec<(String, String, u8)> {
    let client = clickhouse::Client::default()
        .with_url(url)
        .with_compression(clickhouse::Compression::None)
        .with_validation(false);
    client
        .query(&format!(
            "SELECT response_id, interaction_id, is_final FROM {db}.survey_facts FINAL"
        ))
        .fetch_all::<(String, String, u8)>()
        .await
        .unwrap_or_else(|e| panic!("read survey_facts: {e}"))
}

/// One HTTP/1.1 GET; the whole response (status line, headers, body), or "" when nothing
/// listens at `addr`.
pub async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut sock) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let _ = sock.write_all(req.as_bytes()).await;
    let mut resp = String::new();
    let _ = sock.read_to_string(&mut resp).await;
    resp
}

/// A loopback address nothing listens on right now (for a pipeline's metrics endpoint).
pub fn free_local_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    format!("127.0.0.1:{port}")
}

pub async fn count(url: &str, sql: &str) -> u64 {
    let client = clickhouse::Client::default()
        .with_url(url)
        .with_compression(clickhouse::Compression::None)
        .with_validation(false);
    client
        .query(sql)
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs one statement that returns nothing (DDL, ALTER).
pub async fn execute(url: &str, sql: &str) {
    clickhouse::Client::default()
        .with_url(url)
        .with_compression(clickhouse::Compression::None)
        .query(sql)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The sum of every series of a counter in a Prometheus text exposition.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A consumer subscribed to a one-partition topic from its start, and the topic's end offset.
fn topic_reader(brokers: &str, topic: &str) -> (BaseConsumer, i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("topic-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    c.subscribe(&[topic]).unwrap_or_else(|e| panic!("{e}"));
    (c, high)
}

/// Every record of a one-partition topic: (key, payload) as text.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<(String, String)> {
    let (c, high) = topic_reader(brokers, topic);
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < high && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).to_string();
            out.push((text(m.key()), text(m.payload())));
        }
    }
    out
}
