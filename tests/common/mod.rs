//! Helpers for the integration tests: they talk to the real broker and ClickHouse that
//! scripts/services.sh starts (CXP_KAFKA_BROKERS, CXP_CLICKHOUSE_URL), and to a schema
//! registry STUB (no Confluent registry can run here) that serves the two local schemas.
#![allow(dead_code)]

pub mod oracle;

use cx_pipeline::codec::Schemas;
use cx_pipeline::generator::{Encoder, GenEvent};
use cx_pipeline::model::Stream;
use cx_pipeline::sink::rows::WindowRow;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
}

/// Serves GET /schemas/ids/1 (survey) and /2 (interaction) and POST /subjects/*/versions;
/// 404 for anything else.
pub async fn registry_stub() -> String {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let (survey, interaction) = (
                schemas.survey_json.clone(),
                schemas.interaction_json.clone(),
            );
            tokio::spawn(async move {
                let req = read_request(&mut s).await;
                let mut words = req.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let body = match (method, path) {
                    ("GET", "/schemas/ids/1") => {
                        Some(serde_json::json!({ "schema": survey }).to_string())
                    }
                    ("GET", "/schemas/ids/2") => {
                        Some(serde_json::json!({ "schema": interaction }).to_string())
                    }
                    // Registration: the survey schema gets id 1, the interaction schema id 2.
                    ("POST", p) if p.starts_with("/subjects/") => {
                        let id = if req.contains("SurveyResponse") { 1 } else { 2 };
                        Some(serde_json::json!({ "id": id }).to_string())
                    }
                    _ => None,
                };
                let resp = match body {
                    Some(b) => format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}", b.len()),
                    None => "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 47\r\nconnection: close\r\n\r\n{\"error_code\":40403,\"message\":\"Schema not found\"}".to_string(),
                };
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

/// Reads one HTTP/1.1 request: headers, then `content-length` bytes of body.
async fn read_request(s: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).to_string(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Produces every event (key = customer id, default partitioner) and returns where each landed.
pub async fn produce(
    brokers: &str,
    topics: (&str, &str),
    events: &[GenEvent],
    enc: &Encoder,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "10")
        .set("enable.idempotence", "true")
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"));
    let mut out = Vec::with_capacity(events.len());
    for chunk in events.chunks(2000) {
        let payloads: Vec<Vec<u8>> = chunk
            .iter()
            .map(|g| enc.encode(g).unwrap_or_else(|e| panic!("{e}")))
            .collect();
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
        for r in futures::future::join_all(futs).await {
            let d = r.unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            out.push((d.partition, d.offset));
        }
    }
    out
}

/// Reads a whole topic; returns (reason, source_topic, source_partition, source_offset).
pub fn read_dead_letters(brokers: &str, topic: &str) -> Vec<(String, String, i32, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    c.subscribe(&[topic]).unwrap_or_else(|e| panic!("{e}"));
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
        let get = |k: &str| h.get(k).cloned().unwrap_or_default();
        out.push((
            get("reason"),
            get("source_topic"),
            get("source_partition").parse().unwrap_or(-1),
            get("source_offset").parse().unwrap_or(-1),
        ));
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
