//! Sinks: ClickHouse tables (facts, window aggregates, checkpoints).
//!
//! - `clickhouse`: DDL, version adaptation, batched inserts with retries.
//! - `rows`: the row types and the window-row version that orders writers.
//! - `writer`: outputs -> rows, shared by the Kafka job and the demo.
//! - `settings`: what the sink is built from.

pub mod clickhouse;
pub mod migrate;
pub mod rows;
pub mod settings;
pub mod writer;

pub use self::clickhouse::{ClickHouseSink, SinkError};
pub use settings::{ClickHouseSettings, Compression};
pub use writer::RowWriter;
