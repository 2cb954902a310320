//! Sources that drive the processing core: the Kafka job and the embedded demo.

pub mod embedded;
pub mod kafka;
pub mod registry;
