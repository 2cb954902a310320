//! Sources that drive the processing core: the Kafka job's poll loop (`kafka`), the schema
//! registry client it resolves writer schemas with (`registry`), and the embedded demo's
//! in-process feed (`embedded`).

pub mod embedded;
pub mod kafka;
pub mod registry;
