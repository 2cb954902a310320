//! Sources that drive the processing core: the Kafka job and the embedded demo.

pub mod dlq;
pub mod embedded;
mod flush;
pub mod kafka;

pub use flush::Flusher;
