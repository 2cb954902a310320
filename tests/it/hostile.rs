//! Hostile producers, against real Kafka, Apicurio and ClickHouse: with only the rights an
//! ordinary producer has (write to the topic, register a schema under its subject), the
//! messages that once aborted or stalled the job, the budget's variants of them, and a flood
//! of unknown schema ids are sent among ordinary traffic. Each is dead-lettered with its
//! reason, the job runs to the end, and every other message counts exactly as the oracle
//! says.

use crate::common::check::{compare_rows, expected_for, observed_rows};
use crate::common::harness::{all_visible, events, setup, Opts};
use crate::common::hostile::{fanout, leading, longs, nulls, recursive, zigzag};
use apache_avro::Schema;
use cx_pipeline::codec::{avro, frame_confluent, Schemas};
use cx_pipeline::model::Survey;
use cx_pipeline::source::registry::Registry;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// An ordinary survey's datum, to follow a hostile leading value.
fn survey_datum(schemas: &Schemas, n: usize) -> Vec<u8> {
    let s = Survey {
        response_id: format!("hostile-{n}"),
        customer_id: "c000001".into(),
        ticket_id: None,
        submitted_at_ms: crate::common::harness::started_ms(),
        survey_channel: "EMAIL".into(),
        nps_score: Some(9),
        csat_score: Some(5),
        comment: None,
        region: None,
        product: None,
        customer_tier: None,
    };
    let v = avro::survey_value(&s, Some(9), Some(5));
    avro::encode(&schemas.survey, v).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_dead_lettered_and_everything_else_counts_exactly() {
    let s = setup("hostile", Opts::default()).await;
    // A small cache, so the flood below also evicts the ordinary writers, which are then
    // fetched again: eviction must change no result either.
    s.edit_config(
        "[codec]\n",
        "[codec]\nmax_cached_schemas = 20\nschema_lookups_per_second = 40\n",
    );
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::new(&crate::common::env("CXP_SCHEMA_REGISTRY_URL"), None, None);
    let subject = format!("{}-value", s.topics.0);
    let mut ids = HashMap::new();
    for (name, ty) in [
        ("nulls", nulls()),
        ("recursive", recursive()),
        ("longs", longs()),
        ("fanout", fanout()),
    ] {
        let json = leading(&schemas, ty);
        Schema::parse_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let id = registry
            .register(&subject, &json)
            .await
            .unwrap_or_else(|e| panic!("register {name}: {e}"));
        ids.insert(name, id);
    }
    let block = zigzag(16_000_000);
    let longs = 150_000;
    let leads: Vec<(&str, Vec<u8>, &str)> = vec![
        ("nulls", block.repeat(40), "incompatible_schema"),
        ("nulls", block.repeat(100_000), "incompatible_schema"),
        (
            "recursive",
            [vec![2u8; 400_000], vec![0]].concat(),
            "incompatible_schema",
        ),
        (
            "longs",
            [zigzag(longs), vec![0; longs as usize], vec![0]].concat(),
            "resource_limit",
        ),
        (
            "longs",
            [block.clone(), vec![2; 50]].concat(),
            "malformed_avro",
        ),
        ("fanout", vec![], "resource_limit"),
    ];

    let evs = events(6_000, 41);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut hostile: HashMap<(i32, i64), &str> = HashMap::new();
    let send = |payload: Vec<u8>, key: String| {
        let producer = producer.clone();
        let topic = s.topics.0.clone();
        async move {
            let d = producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            (d.partition, d.offset)
        }
    };
    let chunk = evs.len() / leads.len();
    let mut landed = Vec::new();
    for (k, (name, lead, reason)) in leads.iter().enumerate() {
        landed.extend(s.produce(&evs[k * chunk..(k + 1) * chunk]).await);
        for copy in 0..2 {
            let datum = [lead.clone(), survey_datum(&schemas, k * 2 + copy)].concat();
            let at = send(
                frame_confluent(ids[name], &datum),
                format!("c{:06}", k * 7 + copy),
            )
            .await;
            hostile.insert(at, reason);
        }
    }
    // A new unregistered schema id per message: looked up at the configured rate, each one
    // dead-lettered as unknown, none of them holding anything else back for good.
    for n in 0..150u32 {
        let datum = survey_datum(&schemas, 1000 + n as usize);
        let at = send(
            frame_confluent(1_900_000_000 + n, &datum),
            format!("c{:06}", n % 97),
        )
        .await;
        hostile.insert(at, "unknown_schema_id");
    }
    landed.extend(s.produce(&evs[leads.len() * chunk..]).await);
    s.run_to_end().await;

    let exp = expected_for(&s, &evs, &all_visible(&landed));
    compare_rows(&exp.rows, &observed_rows(&s).await);
    let letters = crate::common::read_dead_letter_records(&s.brokers, &s.topics.2);
    let of = |h: &HashMap<String, String>, k: &str| h.get(k).cloned().unwrap_or_default();
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for (h, _) in &letters {
        let at = (
            of(h, "source_partition").parse().unwrap_or(-1),
            of(h, "source_offset").parse().unwrap_or(-1),
        );
        if !seen.insert((of(h, "source_topic"), at)) {
            continue;
        }
        *by_reason.entry(of(h, "reason")).or_default() += 1;
        if of(h, "source_topic") == s.topics.0 {
            if let Some(want) = hostile.get(&at) {
                assert_eq!(&of(h, "reason"), want, "{at:?}: {}", of(h, "error"));
                if *want == "resource_limit" {
                    assert!(of(h, "error").contains("codec.max_values_per_message"));
                }
            }
        }
    }
    let mut want = exp.rejected.clone();
    for reason in hostile.values() {
        *want.entry(reason.to_string()).or_default() += 1;
    }
    assert_eq!(by_reason, want);
}
