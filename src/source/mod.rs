//! Sources that drive the processing core: the Kafka job and the embedded demo.

pub mod dlq;
pub mod embedded;
pub mod kafka;
mod flush;

pub use flush::Flusher;
