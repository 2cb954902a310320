//! Checkpoint cost at steady state and restore after SIGKILL, against the real broker and
//! ClickHouse. A backlog of CXP_CKPT_EVENTS generated events (500,000) on
//! CXP_CKPT_PARTITIONS partitions (4) is read by a bounded run; then a live run reads
//! CXP_CKPT_RATE events/s (10) for CXP_CKPT_SECS (60) that continue the backlog in event
//! time. Reported: the checkpoint bytes written during the live phase (the job's own
//! `checkpoints written` events), per round, and the write amplification (checkpoint bytes /
//! input payload bytes). Then the live run is SIGKILLed and a bounded run restarts from its
//! checkpoints: the time until it has restored, replayed and ended.
//!
//! CXP_BIN selects the binary, so an older build is measured the same way, side by side.
//!
//! Run: scripts/bench-e2e.sh checkpoints

mod common;

use common::{create_topics, num, produce_part, Setup};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sums the `bytes` (and `bases`) fields of the `checkpoints written` events in `text`.
fn checkpoint_bytes(text: &str) -> (u64, u64, u64) {
    let plain = strip_ansi(text);
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (mut rounds, mut bytes, mut bases) = (0, 0, 0);
    for l in plain.lines().filter(|l| l.contains("checkpoints written")) {
        rounds += 1;
        bytes += field(l, "bytes");
        bases += field(l, "bases");
    }
    (rounds, bytes, bases)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn run(s: &Setup, args: &[&str], log: &std::path::Path) -> std::process::Child {
    run_with(s, args, log, "")
}

/// Like `run`, with the metrics endpoint on `listen` (empty: off).
fn run_with(s: &Setup, args: &[&str], log: &std::path::Path, listen: &str) -> std::process::Child {
    let file = s.config_file("a");
    let text = s
        .toml("a")
        .replace("listen = \"\"", &format!("listen = \"{listen}\""));
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let f = std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}"));
    Command::new(&s.bin)
        .arg("--config")
        .arg(&file)
        .args(args)
        .env(
            "RUST_LOG",
            "warn,cx_pipeline::internal_events::delivery=debug",
        )
        .stderr(Stdio::from(f))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", s.bin))
}

/// Waits for the child, sampling its peak resident set (VmHWM) while it runs: MiB. With
/// CXP_CKPT_TIMELINE set, prints the highest RSS of every 5 s as well.
fn wait_peak(mut child: std::process::Child) -> (std::process::ExitStatus, f64) {
    let path = format!("/proc/{}/status", child.id());
    let timeline = std::env::var_os("CXP_CKPT_TIMELINE").is_some();
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (t, mut peak_kib, mut slot, mut slot_max) = (Instant::now(), 0u64, 0u64, 0u64);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            peak_kib = peak_kib.max(field(&text, "VmHWM:"));
            let now = t.elapsed().as_secs() / 5;
            if now != slot {
                if timeline {
                    println!("  {:>4} s: RSS up to {} MiB", slot * 5, slot_max / 1024);
                }
                (slot, slot_max) = (now, 0);
            }
            slot_max = slot_max.max(field(&text, "VmRSS:"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return (status, peak_kib as f64 / 1024.0);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Seconds from the first line of a job's log to the last line containing `what`.
fn at(log: &str, what: &str) -> Option<f64> {
    let stamp = |l: &str| -> Option<f64> {
        let plain = strip_ansi(l);
        let ts = plain.split_whitespace().next()?;
        let hms = ts.split('T').nth(1)?.trim_end_matches('Z');
        let mut it = hms.split(':');
        let (h, m, s): (f64, f64, f64) = (
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
        );
        Some(h * 3600.0 + m * 60.0 + s)
    };
    let first = log.lines().find_map(stamp)?;
    let last = log.lines().rfind(|l| l.contains(what))?;
    Some(stamp(last)? - first)
}

/// One sample of the live run: its resident set (MiB) and the job's own `cx_state_bytes`
/// by kind, summed over partitions (MB), so RSS can be set against the state it holds.
fn sample(pid: u32, listen: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    let mut kinds: std::collections::BTreeMap<String, f64> = Default::default();
    for line in scrape(listen).lines() {
        let Some(rest) = line.strip_prefix("cx_state_bytes{") else {
            continue;
        };
        let kind = rest
            .split("kind=\"")
            .nth(1)
            .and_then(|k| k.split('"').next())
            .unwrap_or("?");
        let v: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *kinds.entry(kind.to_string()).or_default() += v / 1e6;
    }
    let total: f64 = kinds.values().sum();
    let parts: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
    format!(
        "RSS {rss:.0} MiB; state {total:.1} MB ({}); RSS / state {:.2}",
        parts.join(", "),
        rss * 1.048576 / total.max(0.001)
    )
}

/// `GET /metrics` over a plain socket (the bench needs nothing more).
fn scrape(listen: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(listen) else {
        return String::new();
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(conn, "GET /metrics HTTP/1.0\r\nHost: {listen}\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body
}

fn main() {
    let Some(s) = Setup::from_env("ckpt") else {
        return;
    };
    let backlog = num("CXP_CKPT_EVENTS", 500_000);
    let rate = num("CXP_CKPT_RATE", 10);
    let secs = num("CXP_CKPT_SECS", 60);
    let parts = i32::try_from(num("CXP_CKPT_PARTITIONS", 4)).unwrap_or(4);
    let total = backlog + rate * secs;
    create_topics(&s, parts);
    let dir = std::env::temp_dir().join(&s.id);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    println!("binary: {}", s.bin);

    let (_, backlog_bytes) = produce_part(&s, total, 0..backlog, 0);
    let t = Instant::now();
    let (status, peak) = wait_peak(run(&s, &["run", "--until-end"], &dir.join("backlog.log")));
    let text = std::fs::read_to_string(dir.join("backlog.log")).unwrap_or_default();
    let (rounds, bytes, _) = checkpoint_bytes(&text);
    println!(
        "backlog: {backlog} events ({backlog_bytes} payload bytes) in {:.1} s, exit {status}, \
         peak RSS {peak:.0} MiB; {rounds} checkpoint rounds wrote {bytes} bytes",
        t.elapsed().as_secs_f64()
    );

    let live_log = dir.join("live.log");
    let listen = format!("127.0.0.1:{}", 20_000 + std::process::id() % 10_000);
    let live = run_with(&s, &["run"], &live_log, &listen);
    let live_pid = live.id();
    std::thread::sleep(Duration::from_secs(15)); // claims written, caught up
    println!("live, caught up: {}", sample(live_pid, &listen));
    let before = std::fs::read_to_string(&live_log).unwrap_or_default().len();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, listen) = (done.clone(), listen.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            let every = Duration::from_secs(num("CXP_CKPT_SAMPLE_SECS", 60) as u64);
            let mut next = every;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if t.elapsed() >= next {
                    println!(
                        "live, {:>5} s: {}",
                        next.as_secs(),
                        sample(live_pid, &listen)
                    );
                    next += every;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let (n, input) = produce_part(&s, total, backlog..total, rate as u64);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    std::thread::sleep(Duration::from_secs(2));
    let text = std::fs::read_to_string(&live_log).unwrap_or_default();
    let (rounds, bytes, bases) = checkpoint_bytes(text.get(before..).unwrap_or(""));
    println!(
        "live: {n} events ({input} payload bytes) at {rate}/s over {secs} s: {rounds} checkpoint \
         rounds ({bases} bases) wrote {bytes} bytes, {:.0} bytes per round; write amplification \
         (checkpoint bytes / input bytes) {:.1}x",
        bytes as f64 / rounds.max(1) as f64,
        bytes as f64 / input.max(1) as f64
    );

    let hwm = std::fs::read_to_string(format!("/proc/{live_pid}/status")).unwrap_or_default();
    println!(
        "live run peak RSS: {}",
        hwm.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("?")
    );
    let mut live = live;
    let _ = live.kill(); // SIGKILL
    let _ = live.wait();
    let t = Instant::now();
    let (status, peak) = wait_peak(run(&s, &["run", "--until-end"], &dir.join("restore.log")));
    let text = std::fs::read_to_string(dir.join("restore.log")).unwrap_or_default();
    let (_, bytes, _) = checkpoint_bytes(&text);
    println!(
        "restore: every partition claimed and restored {:.1} s after start; last checkpoint \
         written at {:.1} s",
        at(&text, "partition assigned").unwrap_or(f64::NAN),
        at(&text, "checkpoints written").unwrap_or(f64::NAN)
    );
    println!(
        "restore after SIGKILL: a bounded run restored, replayed and ended in {:.1} s, exit \
         {status}, peak RSS {peak:.0} MiB (its claims and final checkpoint wrote {bytes} bytes)",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(dir);
}
