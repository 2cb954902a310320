//! Everything the pipeline and the detector report about themselves, one struct per
//! occurrence (Vector's `internal_events` pattern): `emit()` writes the log line and moves
//! the metrics together, so a label or a log field cannot drift between call sites.
//! Per-topic series are always labelled with the topic's name. Survey content (comments,
//! scores) never appears here.
//!
//! # Layout (by area)
//! - `ingest`: rejects, late revisions, repeats, registry waits.
//! - `delivery`: claims, releases, fencing, checkpoints, commits.
//! - `kafka`: the consumer's gauges (lag, floors, state sizes), consumer errors.
//! - `sink`: ClickHouse failures and acknowledged inserts.
//! - `detector`: alert events, delivery failures, the detector's pass gauges.

mod delivery;
mod detector;
mod ingest;
mod kafka;
mod sink;

pub use delivery::*;
pub use detector::*;
pub use ingest::*;
pub use kafka::*;
pub use sink::*;

use crate::metrics::Metrics;

/// An occurrence, emitted into the series of `M` (the pipeline's by default).
pub trait InternalEvent<M = Metrics> {
    fn emit(self, m: &M);
}
