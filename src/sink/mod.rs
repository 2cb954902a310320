//! Sinks: ClickHouse tables (facts, window aggregates, checkpoints).

pub mod clickhouse;
pub mod rows;

pub use self::clickhouse::{ClickHouseSink, SinkError};
