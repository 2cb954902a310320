//! The decoder's writer-schema lookups and cache: what a schema-id flood costs, visible.

use super::{counter, single_counter, single_gauge};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

pub struct SchemaMetrics {
    /// Lookups of uncached ids by topic and outcome: `requested` (a registry request) or
    /// `throttled` (past `codec.schema_lookups_per_second`; the message waits its turn).
    pub lookups: IntCounterVec,
    pub cache_entries: IntGauge,
    pub cache_bytes: IntGauge,
    pub cache_evictions: IntCounter,
}

impl SchemaMetrics {
    pub fn new(r: &Registry) -> Self {
        SchemaMetrics {
            lookups: counter(
                r,
                "cx_schema_lookups_total",
                "Writer-schema lookups of uncached ids: requested from the registry, or throttled (the message waits)",
                &["topic", "outcome"],
            ),
            cache_entries: single_gauge(
                r,
                "cx_schema_cache_entries",
                "Writer schemas and unknown ids held by the decoder (capped by codec.max_cached_schemas)",
            ),
            cache_bytes: single_gauge(
                r,
                "cx_schema_cache_bytes",
                "Schema text bytes of the cached writer schemas (capped by codec.max_cached_schema_bytes)",
            ),
            cache_evictions: single_counter(
                r,
                "cx_schema_cache_evictions_total",
                "Writer schemas evicted from the full cache (fetched again when next used)",
            ),
        }
    }
}
