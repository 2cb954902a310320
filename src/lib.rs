//! Streaming customer-experience metrics: survey responses and support contacts from Kafka
//! (Avro) are joined, folded into event-time windows per segment, and written to ClickHouse
//! and Prometheus.
//!
//! # Layout
//! Three floors; imports point down only (`tests/it/layering.rs` holds it, and
//! docs/ARCHITECTURE.md maps every file).
//!
//! **Pure** (no I/O): [`model`], [`rng`], [`secret`], [`shutdown`], [`stats`] (NPS classes,
//! intervals), [`codec`] (payload -> validated event), [`join`] (survey -> contact
//! attribution), [`window`] (tumbling windows, partial states), [`pipeline`] (per-partition
//! clocks, limits, dedup, the core), [`detect`] (the NPS-drop detector's algorithm),
//! [`generator`] (seeded events).
//!
//! **I/O**: [`tls`], [`metrics`] (registries, /metrics), [`internal_events`] (every occurrence
//! logged and counted in one place), [`sink`] (ClickHouse), [`delivery`] (rows -> dead
//! letters -> checkpoint -> commit, fencing, the batch policy), [`ingest`] (the one ingest
//! step), [`config`] (file -> validated settings), [`source`] (the Kafka poll loop, the
//! registry client, the demo's feed).
//!
//! **App**: [`app`], one module per command, built from [`config::Validated`].
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
