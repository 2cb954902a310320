//! /metrics over real HTTP: business counters equal counts taken straight from the generated
//! events, and the exposition passes the real `promtool check metrics` linter.

use cx_pipeline::codec::WireFormat;
use cx_pipeline::config::Config;
use cx_pipeline::generator::{generate, GenConfig};
use cx_pipeline::metrics::{server, Metrics};
use cx_pipeline::model::Event;
use cx_pipeline::pipeline::Core;
use std::io::Write;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sum_metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
}

#[tokio::test]
async fn metrics_endpoint_serves_correct_counters_in_valid_exposition() {
    let settings = Config::default()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
        .settings;
    let events = generate(
        &GenConfig {
            count: 5_000,
            malformed_share: 0.0,
            late_share: 0.0,
            ..GenConfig::default()
        },
        WireFormat::Avro,
    );
    // Independent counts from the generated events (docs/METRICS.md: a survey counts once,
    // when it settles: when the contact floor, newest contact - 30 s - 5 min, passes
    // submitted_at + 10 min).
    let newest_contact = events
        .iter()
        .filter_map(|g| match &g.event {
            Event::Interaction(i) => Some(i.ended_at_ms),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let contact_floor = newest_contact - 30_000 - 300_000;
    let (mut promoters, mut contacts, mut handle) = (0u64, 0u64, 0u64);
    for g in &events {
        match &g.event {
            Event::Survey(s) => {
                promoters += u64::from(
                    s.submitted_at_ms + 600_000 < contact_floor
                        && s.nps_score.is_some_and(|n| n >= 9),
                )
            }
            Event::Interaction(i) => {
                contacts += 1;
                handle += (i.talk_ms + i.hold_ms + i.wrap_ms) as u64;
            }
        }
    }
    // Every message is delivered twice (a webhook retry): the repeat must not count.
    let mut core = Core::new(settings);
    let mut offsets = std::collections::HashMap::new();
    for g in events.iter().flat_map(|g| [g, g]) {
        let o = offsets.entry(g.stream).or_insert(0i64);
        *o += 1;
        let r = core.process(
            0,
            *o - 1,
            g.event.clone(),
            format!("{:?}", g.event).as_bytes(),
        );
        assert_eq!(
            r.is_err(),
            *o % 2 == 0,
            "only the repeat is rejected: {r:?}"
        );
    }
    core.advance_all();
    core.finish_all();
    let metrics = Arc::new(Metrics::new(500));
    metrics.record_business(&core.take_outputs());
    let addr = server::serve("127.0.0.1:0", metrics.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sock.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut resp = String::new();
    sock.read_to_string(&mut resp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:.200}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(
        sum_metric(body, "cx_nps_answers_total", "class=\"promoter\"") as u64,
        promoters
    );
    assert_eq!(sum_metric(body, "cx_contacts_total", "") as u64, contacts);
    let seconds = sum_metric(body, "cx_handle_time_seconds_total", "");
    assert!(
        (seconds - handle as f64 / 1000.0).abs() < 0.01,
        "{seconds} vs {handle} ms"
    );
    assert!(promoters > 100 && contacts > 1000);

    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not found ({e}); scripts/install-deps.sh installs it")
        });
    child.stdin.take().map(|mut s| s.write_all(body.as_bytes()));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
