//! Schema registry faults. For 401/403 the registry is a **stub** (a few lines of HTTP on a
//! local port): the real Apicurio in the test bed cannot be made to answer them without an
//! identity provider. For 500s and timeouts the real registry sits behind a proxy in the test
//! that answers 500 or hangs on demand. Kafka and ClickHouse are real in the job-level tests.

use crate::common::check::check;
use crate::common::harness::{all_visible, events, setup, signal, wait_exit, Opts, Setup};
use crate::common::proxy::{Mode, Proxy};
use cx_pipeline::codec::{Decoder, Disposition, Schemas, WireFormat};
use cx_pipeline::generator::Encoder;
use cx_pipeline::model::Stream;
use cx_pipeline::source::registry::{BlockingRegistry, Registry};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers each request with the next scripted status (the last one repeats); a 200 carries
/// the survey schema. Counts requests.
struct StubRegistry {
    url: String,
    script: Arc<Mutex<VecDeque<u16>>>,
    requests: Arc<Mutex<usize>>,
}

impl StubRegistry {
    async fn start(schema_json: String) -> StubRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let script = Arc::new(Mutex::new(VecDeque::from([200u16])));
        let requests = Arc::new(Mutex::new(0usize));
        let (sc, rq) = (script.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                *rq.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                let status = {
                    let mut s = sc.lock().unwrap_or_else(|p| p.into_inner());
                    if s.len() > 1 {
                        s.pop_front().unwrap_or(500)
                    } else {
                        s.front().copied().unwrap_or(500)
                    }
                };
                let body = if status == 200 {
                    serde_json::json!({ "schema": schema_json }).to_string()
                } else {
                    format!("{{\"error_code\":{status}}}")
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        StubRegistry {
            url,
            script,
            requests,
        }
    }

    fn answer(&self, statuses: &[u16]) {
        *self.script.lock().unwrap_or_else(|p| p.into_inner()) = statuses.iter().copied().collect();
    }

    fn requests(&self) -> usize {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn survey_payload(schemas: &Schemas) -> Vec<u8> {
    let g = events(200, 3)
        .into_iter()
        .find(|g| g.stream == Stream::Survey && g.malformed.is_none())
        .unwrap_or_else(|| panic!("a survey"));
    Encoder {
        format: WireFormat::Confluent,
        schemas: schemas.clone(),
        ids: (7, 8),
    }
    .encode(&g)
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn denied_stops_unavailable_retries_and_unknown_is_asked_again_after_its_ttl() {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let stub = rt.block_on(StubRegistry::start(schemas.survey.canonical_form()));
    let payload = survey_payload(&schemas);
    let mut dec = Decoder::new(
        WireFormat::Confluent,
        schemas.clone(),
        Some(Box::new(BlockingRegistry {
            registry: Registry::new(&stub.url, Some("cx"), None),
            runtime: rt.handle().clone(),
        })),
    )
    .unknown_ttl(Duration::from_millis(300));

    for denied in [401, 403] {
        stub.answer(&[denied]);
        let e = dec.decode(Stream::Survey, &payload).err();
        let e = e.unwrap_or_else(|| panic!("{denied} must fail"));
        assert!(e.disposition() == Disposition::Stop, "{denied}: {e}");
        assert!(e.to_string().contains("codec.schema_registry_user"), "{e}");
    }
    stub.answer(&[500]);
    let e = dec.decode(Stream::Survey, &payload).err();
    assert!(e.is_some_and(|e| e.disposition() == Disposition::Retry));

    stub.answer(&[404]);
    let e = dec.decode(Stream::Survey, &payload).err();
    assert_eq!(e.map(|e| e.reason()), Some("unknown_schema_id"));
    let asked = stub.requests();
    // Within the TTL the answer is cached: no request.
    assert!(dec.decode(Stream::Survey, &payload).is_err());
    assert_eq!(stub.requests(), asked);
    // After it, the id is asked again, and the producer has registered it meanwhile.
    std::thread::sleep(Duration::from_millis(350));
    stub.answer(&[200]);
    assert!(dec.decode(Stream::Survey, &payload).is_ok());
    assert_eq!(stub.requests(), asked + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_stops_with_a_clear_message_when_the_registry_refuses_it() {
    let s = setup("registry_401", Opts::default()).await;
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let stub = StubRegistry::start(schemas.survey.canonical_form()).await;
    stub.answer(&[401]);
    s.produce(&events(2_000, 61)).await;
    let cfg = std::fs::read_to_string(s.config.path()).unwrap_or_default();
    let real = cfg
        .lines()
        .find(|l| l.starts_with("schema_registry_url"))
        .unwrap_or_default()
        .to_string();
    std::fs::write(
        s.config.path(),
        cfg.replace(&real, &format!("schema_registry_url = \"{}\"", stub.url)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("pipeline.log");
    let code = wait_exit(
        s.pipeline(&["run", "--until-end"], Some(&log)),
        Duration::from_secs(60),
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("refused the request (") && text.contains("CXP_SCHEMA_REGISTRY_PASSWORD"),
        "{text}"
    );
    assert!(
        crate::common::read_dead_letters(&s.brokers, &s.topics.2).is_empty(),
        "nothing was dead-lettered for the registry's refusal"
    );
}

/// Puts the real registry behind a proxy the test controls, in the job's config.
async fn behind_proxy(s: &Setup) -> Proxy {
    let registry = crate::common::env("CXP_SCHEMA_REGISTRY_URL");
    let upstream = registry
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let proxy = Proxy::start(upstream.clone()).await;
    s.edit_config(
        &format!("schema_registry_url = \"{registry}\""),
        &format!(
            "schema_registry_url = \"{}\"",
            registry.replace(&upstream, &format!("127.0.0.1:{}", proxy.port))
        ),
    );
    proxy
}

/// librdkafka keeps a partition paused across a revoke and a new assignment, while the job
/// forgets why it paused it (the held message is dropped with the partition): every
/// partition must be resumed when it is assigned, or it is never read again. Here every
/// partition waits for the registry when a second member joins and then leaves (two eager
/// rebalances), and all must be read once the registry is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_waiting_through_a_rebalance_are_read_again_after_it() {
    let s = setup("held_rebalance", Opts::default()).await;
    let proxy = behind_proxy(&s).await;
    proxy.set(Mode::Http500);
    let evs = events(8_000, 71);
    let landed = s.produce(&evs).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let a = s.pipeline(&["run"], Some(&log_a));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let b = s.pipeline(&["run"], Some(&log_b));
    tokio::time::sleep(Duration::from_secs(12)).await;
    signal(&b, "-TERM");
    assert_eq!(wait_exit(b, Duration::from_secs(120)).await, 0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rebalances = crate::common::harness::assignments(&log_a);
    assert!(rebalances >= 3, "member a was assigned {rebalances} times");
    assert!(
        crate::common::harness::assignments(&log_b) >= 1,
        "member b took partitions"
    );
    assert_eq!(s.contacts_written().await, 0, "nothing decoded yet");
    proxy.set(Mode::Up);
    s.wait_checkpointed(evs.len() as u64, Duration::from_secs(180))
        .await;
    signal(&a, "-TERM");
    assert_eq!(wait_exit(a, Duration::from_secs(120)).await, 0);
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_longer_than_the_poll_interval_keeps_the_member_and_loses_nothing() {
    let s = setup("registry_outage", Opts::default()).await;
    let proxy = behind_proxy(&s).await;
    proxy.set(Mode::Http500);
    // A member that does not call poll for 15 s is expelled; the outage lasts twice that.
    s.edit_config(
        "\"heartbeat.interval.ms\" = \"1000\"",
        "\"heartbeat.interval.ms\" = \"1000\"\n\"max.poll.interval.ms\" = \"15000\"",
    );
    let evs = events(20_000, 67);
    let landed = s.produce(&evs).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("pipeline.log");
    let child = s.pipeline(&["run"], Some(&log));
    tokio::time::sleep(Duration::from_secs(16)).await;
    proxy.set(Mode::Hang); // every lookup now runs into the client's 10 s timeout
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(
        s.contacts_written().await,
        0,
        "nothing decoded without the registry"
    );
    proxy.set(Mode::Up);
    s.wait_checkpointed(evs.len() as u64, Duration::from_secs(300))
        .await;
    signal(&child, "-TERM");
    assert_eq!(wait_exit(child, Duration::from_secs(120)).await, 0);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let waits = text.matches("schema registry unavailable").count();
    eprintln!("registry outage: {waits} waits logged");
    assert!(waits > 0, "the waits were reported");
    assert!(
        !text.contains("assignment lost") && !text.contains("partition fenced"),
        "the member kept its partitions through the outage"
    );
    s.run_to_end().await;
    check(&s, &evs, &all_visible(&landed)).await;
}
