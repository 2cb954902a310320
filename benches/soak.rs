//! Memory over a long run at a steady rate: the pipeline (`cx-pipeline run`) consumes while a
//! producer feeds both topics at CXP_SOAK_RATE messages/s for CXP_SOAK_SECS seconds; the
//! pipeline's resident set size is sampled every 10 s. Prints the samples and the ratio of
//! the last minute's median RSS to the median of the first minute after warm-up.
//!
//! The join holds contacts for its lookback of *event time*, and the generator's event time
//! runs about 600x faster than the wall clock at this rate, so the soak uses a 6 h lookback:
//! state reaches its steady size within the warm-up instead of after 7 days.
//!
//! Run through scripts/bench-soak.sh (starts the broker and ClickHouse).

mod common;

use common::{create_topics, median, num, produce, Setup};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let Some(mut s) = Setup::from_env("soak") else {
        return;
    };
    s.extra = "[join]\nlookback = \"6h\"\n".into();
    let secs = num("CXP_SOAK_SECS", 600) as u64;
    let rate = num("CXP_SOAK_RATE", 1500) as u64;
    let warmup = num("CXP_SOAK_WARMUP_SECS", 120) as u64;
    create_topics(&s, 4);
    let file = s.config_file("soak");
    let mut child = std::process::Command::new(&s.bin)
        .arg("--config")
        .arg(&file)
        .arg("run")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", s.bin));
    let pid = child.id();
    let count = (secs * rate) as usize;
    let producer = {
        let s = s.clone();
        std::thread::spawn(move || produce(&s, count, rate))
    };
    let start = Instant::now();
    let mut samples = Vec::new();
    println!("| elapsed (s) | RSS (MiB) |");
    println!("|---|---|");
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(10));
        let Some(kib) = rss_kib(pid) else {
            panic!("the pipeline exited early: {:?}", child.try_wait());
        };
        let t = start.elapsed().as_secs();
        println!("| {t} | {:.1} |", kib as f64 / 1024.0);
        samples.push((t, kib as f64 / 1024.0));
    }
    let produced = producer.join().ok();
    // SIGTERM: the job flushes, checkpoints and exits 0.
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(file);
    let window = |lo: u64, hi: u64| {
        median(
            samples
                .iter()
                .filter(|(t, _)| *t > lo && *t <= hi)
                .map(|(_, m)| *m)
                .collect(),
        )
    };
    let first = window(warmup, warmup + 60);
    let last = window(secs.saturating_sub(60), secs);
    println!(
        "\nproduced {:?} messages at {rate}/s over {secs} s; pipeline exit {status}",
        produced.map(|p| p.0)
    );
    println!(
        "median RSS {first:.1} MiB in the minute after a {warmup} s warm-up, {last:.1} MiB in the last minute: {:+.1} %",
        100.0 * (last / first - 1.0)
    );
}
