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
//! - [`pipeline`]: per-partition state tying clocks, join and windows together; no I/O;
//!   [`pipeline::checkpoint`] the checkpoint format.
//! - [`source`]: the Kafka job (at-least-once, checkpointed) and the embedded demo.
//! - [`sink`]: ClickHouse DDL, version adaptation, batched inserts, checkpoints.
//! - [`metrics`]: Prometheus registry and the /metrics endpoint.
//! - [`generator`]: seeded realistic events for demos, tests and benchmarks.
//!
//! # Delivery
//! Per partition pair, rows are written, then the state is checkpointed (with the offsets
//! it covers) to ClickHouse, then offsets are committed. On assignment the checkpoint is
//! restored and consumption resumes exactly after it. What rows finally hold is a function
//! of each topic-partition's order, never of timing or interleaving (README, Semantics), and
//! a window row's version counts the operations applied to it, so `FINAL` reads equal an
//! offline recomputation.

pub mod codec;
pub mod config;
pub mod generator;
pub mod ingest;
pub mod join;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod window;
