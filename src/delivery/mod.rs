//! Delivery: how results leave the pipeline so that each input record counts exactly once
//! in ClickHouse and Prometheus, whatever fails and whenever. docs/DELIVERY.md states the
//! guarantee under each fault; this module is where each is enforced.
//!
//! - [`committer`]: one flush policy and one order, rows → dead letters → checkpoint →
//!   offsets; partitions are checkpointed before they are given up; business counters move
//!   with checkpoints.
//! - [`store`]: the checkpoint store: ownership epochs (fencing), the versions that order
//!   checkpoint copies and window rows across writers, the SQL.
//! - [`bases`]: whole-state bases, written only when they pay; the marks in between
//!   point at one, and the input topics hold the changes since (a restore replays them).
//! - [`format`](mod@format): what a checkpoint records about itself (format version, the settings and
//!   the Kafka source it belongs to), and the refusal when they changed.
//! - [`dead_letter`]: rejected messages with their reason; never stops the job.
//! - [`batch`]: when a batch of rows goes to the sink.

pub mod bases;
pub mod batch;
pub mod claims;
pub mod committer;
pub mod dead_letter;
pub mod format;
pub mod store;

pub use batch::Batch;
pub use committer::{Close, Committer, CommitterParts, DeliveryError, Flush};
