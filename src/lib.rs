//! Streaming customer-experience metrics: survey responses and support contacts from Kafka
//! (Avro) are joined, folded into event-time windows per segment, and written to ClickHouse
//! and Prometheus.
//!
//! # Layout
//! - [`config`]: TOML config, env overrides, `validate()` listing every bad key.
//! - [`codec`]: Confluent wire format / bare Avro -> validated [`model`] events.
//! - [`join`]: survey -> contact attribution state (bounded, deterministic).
//! - [`window`]: tumbling windows over grouping sets; [`window::aggregate`] the mergeable
//!   partial states (NPS, CSAT, AHT).
//! - [`ingest`]: the one step both sources run: decode, validate, fold, route rejects.
//! - [`pipeline`]: per-partition state tying clocks, join and windows together; no I/O.
//! - [`delivery`]: how results leave so that each record counts once: the committer (rows
//!   -> dead letters -> checkpoint -> commit), the checkpoint store (ownership epochs,
//!   versions, SQL), the checkpoint format and its identity checks, dead letters.
//! - [`source`]: the Kafka job's poll loop and the embedded demo.
//! - [`sink`]: ClickHouse DDL, version adaptation, row types, batched inserts with retries.
//! - [`metrics`]: Prometheus registry and the /metrics endpoint; [`internal_events`] every
//!   occurrence the pipeline reports about itself, logged and counted in one place.
//! - [`generator`]: seeded realistic events for demos, tests and benchmarks.
//!
//! # Delivery
//! See [`delivery`] and docs/DELIVERY.md: per partition pair, rows are written, dead
//! letters confirmed, the state checkpointed with the offsets it covers, then offsets
//! committed; partitions are checkpointed before they are given up; each assignment takes a
//! new ownership epoch so a stalled former owner cannot overwrite the new owner's state.

pub mod app;
pub mod codec;
pub mod config;
pub mod delivery;
pub mod detect;
pub mod generator;
pub mod ingest;
pub mod internal_events;
pub mod join;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod rng;
pub mod secret;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod stats;
pub mod tls;
pub mod window;
