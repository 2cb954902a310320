//! End to end through a real broker into a real ClickHouse, side by side in one run: the raw
//! consume rate of a topic pair (an rdkafka consumer with the job's own consumer settings
//! that only counts messages) against the full pipeline (`cx-pipeline run --until-end`,
//! decode + join + windows + ClickHouse inserts + dead letters + checkpoints) on the same
//! topics, alternating raw and pipeline runs so drift on a shared machine hits both.
//!
//! Both clocks start before the consumer is created and include joining a fresh consumer
//! group; the pipeline's also includes process start, ClickHouse table setup and its final
//! flush. Run through scripts/bench-e2e.sh, which starts the broker and ClickHouse.
//!
//! Environment: CXP_KAFKA_BROKERS, CXP_CLICKHOUSE_URL (required); CXP_BIN (default
//! $CARGO_TARGET_DIR/release/cx-pipeline); CXP_BENCH_EVENTS (2000000: with fewer, joining the
//! group dominates the raw side's time); CXP_BENCH_RUNS (3);
//! CXP_BENCH_PARTITIONS (4); CXP_BENCH_MALFORMED and CXP_BENCH_LATE (shares of poison and
//! too-late messages, default 0: clean input); CXP_BENCH_LOG
//! (the pipeline's RUST_LOG, default warn).

use cx_pipeline::delivery::dead_letter::{DeadLetter, DeadLetterProducer};
use cx_pipeline::source::kafka::consumer_config;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::Message;
use std::time::{Duration, Instant};

mod common;

use common::{create_topics, env_or, median, num, produce, share, Setup};

/// Seconds for a counting consumer with the job's settings to read `expected` messages.
/// With `dead_letter_every`, it also forwards every n-th message to the dead-letter topic
/// through the job's own dead-letter producer, and waits for those deliveries at the end:
/// the broker cost of dead letters without any of the pipeline's work.
fn raw(s: &Setup, run: &str, expected: usize, dead_letter_every: Option<usize>) -> f64 {
    let start = Instant::now();
    let cfg = s.config(run);
    let consumer: BaseConsumer = consumer_config(&cfg.kafka)
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &cfg.kafka.brokers);
    let dlq = DeadLetterProducer::new(&client, &s.topics[2], cfg.kafka.dead_letter_max_bytes)
        .unwrap_or_else(|e| panic!("dead-letter producer: {e}"));
    consumer
        .subscribe(&[&s.topics[0], &s.topics[1]])
        .unwrap_or_else(|e| panic!("subscribe: {e}"));
    let (mut n, mut bytes) = (0usize, 0usize);
    while n < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
                if dead_letter_every.is_some_and(|k| n % k == 0) {
                    dlq.send(&DeadLetter {
                        reason: "bench",
                        detail: String::new(),
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key(),
                        payload: m.payload().unwrap_or(&[]),
                    })
                    .unwrap_or_else(|e| panic!("dead letter: {e}"));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("consume: {e}"),
        }
        if start.elapsed() > Duration::from_secs(600) {
            panic!("raw consumer read {n} of {expected} in 10 minutes");
        }
    }
    assert!(bytes > 0);
    dlq.confirm().unwrap_or_else(|e| panic!("{e}"));
    start.elapsed().as_secs_f64()
}

/// Seconds for the pipeline binary to consume everything and exit cleanly.
fn pipeline(s: &Setup, run: &str) -> f64 {
    let file = s.config_file(run);
    let start = Instant::now();
    let status = std::process::Command::new(&s.bin)
        .arg("--config")
        .arg(&file)
        .args(["run", "--until-end"])
        .env("RUST_LOG", env_or("CXP_BENCH_LOG", "warn"))
        .status()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", s.bin));
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "pipeline exited with {status}");
    let _ = std::fs::remove_file(file);
    secs
}

fn main() {
    let Some(s) = Setup::from_env("bench") else {
        return;
    };
    let (events, runs) = (num("CXP_BENCH_EVENTS", 2_000_000), num("CXP_BENCH_RUNS", 3));
    create_topics(&s, num("CXP_BENCH_PARTITIONS", 4) as i32);
    let t = Instant::now();
    let (n, bytes) = produce(&s, events, 0);
    eprintln!("topics: {}", s.topics.join(", "));
    println!(
        "produced {n} messages ({} bytes mean) in {:.1} s",
        bytes / n.max(1),
        t.elapsed().as_secs_f64()
    );
    // The pipeline dead-letters the malformed and the too-late messages.
    let dead_share = share("CXP_BENCH_MALFORMED", 0.0) + share("CXP_BENCH_LATE", 0.0);
    let every = (dead_share > 0.0).then(|| (1.0 / dead_share).round().max(1.0) as usize);
    println!(
        "| run | raw consume (msg/s) | raw + dead letters (msg/s) | pipeline (msg/s) | pipeline / raw | pipeline / (raw + dead letters) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rates: [Vec<f64>; 3] = Default::default();
    for r in 0..runs {
        let raw_rate = n as f64 / raw(&s, &format!("raw{r}"), n, None);
        let dl_rate = match every {
            Some(k) => n as f64 / raw(&s, &format!("rawdl{r}"), n, Some(k)),
            None => raw_rate,
        };
        let pipe_rate = n as f64 / pipeline(&s, &format!("pipe{r}"));
        println!(
            "| {} | {raw_rate:.0} | {dl_rate:.0} | {pipe_rate:.0} | {:.2} | {:.2} |",
            r + 1,
            pipe_rate / raw_rate,
            pipe_rate / dl_rate
        );
        for (v, x) in rates.iter_mut().zip([raw_rate, dl_rate, pipe_rate]) {
            v.push(x);
        }
    }
    let ratio =
        |a: usize, b: usize| median(rates[a].iter().zip(&rates[b]).map(|(x, y)| x / y).collect());
    println!(
        "| median | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
        median(rates[0].clone()),
        median(rates[1].clone()),
        median(rates[2].clone()),
        ratio(2, 0),
        ratio(2, 1)
    );
}
