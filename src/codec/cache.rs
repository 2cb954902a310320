//! Writer schemas by id: fetched once, checked once, kept in a bounded cache, and fetched at a
//! bounded rate, so a producer writing a new random schema id per message costs neither
//! unbounded memory nor a blocking registry request per message.
//!
//! A lookup past the rate is not a verdict on the message: it is [`DecodeError::LookupThrottled`]
//! (retried, the partition held, like a registry outage), so which messages are counted never
//! depends on how fast they arrived. An evicted schema is fetched again when next used; ids
//! are immutable in a registry, so that changes nothing but the cost.

use super::budget::Budget;
use super::{guard, DecodeError, Fetch, SchemaSource, Schemas, Writer};
use crate::model::Stream;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How writer schemas are looked up (`codec.schema_lookups_per_second`,
/// `codec.max_cached_schemas`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LookupPolicy {
    /// Registry requests per second per topic; also the burst.
    pub per_second: f64,
    /// Writer schemas (and unknown ids) remembered; the least recently used goes first.
    pub max_cached: usize,
    /// Schema text the cached writers were parsed from, in bytes, at most; the least
    /// recently used go first. A registry answer is at most 4 MiB, so the entry count alone
    /// would let a thousand huge schemas take gigabytes.
    pub max_cached_bytes: usize,
    /// How long an id the registry did not know stays unknown before it is asked again
    /// (a producer may register its schema after its first message arrived).
    pub unknown_ttl: Duration,
}

impl Default for LookupPolicy {
    fn default() -> Self {
        LookupPolicy {
            per_second: 20.0,
            max_cached: 1000,
            max_cached_bytes: 64 << 20,
            unknown_ttl: Duration::from_secs(60),
        }
    }
}

/// Cumulative counts, published as metrics by the ingest step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Registry requests made, per stream.
    pub requests: [u64; 2],
    /// Lookups deferred by the rate limit, per stream.
    pub throttled: [u64; 2],
    pub evicted: u64,
    pub cached: usize,
    /// Schema text bytes of the cached entries.
    pub cached_bytes: usize,
}

/// Weight of an entry that holds no schema text (an unknown id).
const SMALL_ENTRY: usize = 64;

/// A writer schema ready to use, or why it cannot be used.
#[derive(Clone)]
enum Entry {
    Ready(Arc<Writer>),
    Unknown(Instant),
    Incompatible(String),
}

pub(super) struct Cache {
    /// Entry, last use, weight (schema text bytes; a small constant for the others).
    entries: HashMap<(Stream, u32), (Entry, u64, usize)>,
    tick: u64,
    tokens: [f64; 2],
    refilled: [Instant; 2],
    pub(super) policy: LookupPolicy,
    pub(super) stats: LookupStats,
    /// The clock; tests move it by hand.
    pub(super) now: Arc<dyn Fn() -> Instant + Send + Sync>,
}

impl Cache {
    pub(super) fn new(policy: LookupPolicy, clock: Arc<dyn Fn() -> Instant + Send + Sync>) -> Self {
        let now = clock();
        Cache {
            entries: HashMap::new(),
            tick: 0,
            tokens: [policy.per_second.max(1.0); 2],
            refilled: [now; 2],
            policy,
            stats: LookupStats::default(),
            now: clock,
        }
    }

    pub(super) fn insert_ready(&mut self, stream: Stream, id: u32, w: Writer, weight: usize) {
        self.put((stream, id), Entry::Ready(Arc::new(w)), weight);
    }

    pub(super) fn insert_unknown(&mut self, stream: Stream, id: u32) {
        // Preloaded unknowns never expire: far enough in the future for any run.
        let now = (self.now)();
        let at = now
            .checked_add(Duration::from_secs(10 * 365 * 86_400))
            .unwrap_or(now);
        self.put((stream, id), Entry::Unknown(at), SMALL_ENTRY);
    }

    /// Inserts, evicting the least recently used first while the count or the bytes would
    /// pass their caps.
    fn put(&mut self, key: (Stream, u32), e: Entry, weight: usize) {
        if let Some((_, _, w)) = self.entries.remove(&key) {
            self.stats.cached_bytes = self.stats.cached_bytes.saturating_sub(w);
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= self.policy.max_cached
                || self.stats.cached_bytes.saturating_add(weight) > self.policy.max_cached_bytes)
        {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, t, _))| *t)
                .map(|(k, _)| *k);
            let Some(k) = oldest else { break };
            if let Some((_, _, w)) = self.entries.remove(&k) {
                self.stats.cached_bytes = self.stats.cached_bytes.saturating_sub(w);
            }
            self.stats.evicted += 1;
        }
        self.tick += 1;
        self.entries.insert(key, (e, self.tick, weight));
        self.stats.cached = self.entries.len();
        self.stats.cached_bytes = self.stats.cached_bytes.saturating_add(weight);
    }

    /// Takes one request token for `stream`, or says how long until one is there.
    fn take_token(&mut self, stream: Stream) -> Result<(), Duration> {
        let i = stream as usize;
        let rate = self.policy.per_second.max(0.001);
        let now = (self.now)();
        let dt = now
            .saturating_duration_since(self.refilled[i])
            .as_secs_f64();
        self.tokens[i] = (self.tokens[i] + dt * rate).min(rate.max(1.0));
        self.refilled[i] = now;
        if self.tokens[i] >= 1.0 {
            self.tokens[i] -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            ((1.0 - self.tokens[i]) / rate).min(60.0),
        ))
    }

    /// The writer for a schema id, fetched and checked on first use.
    pub(super) fn writer(
        &mut self,
        stream: Stream,
        id: u32,
        registry: Option<&dyn SchemaSource>,
        schemas: &Schemas,
        budget: Budget,
    ) -> Result<Arc<Writer>, DecodeError> {
        let now = (self.now)();
        self.tick += 1;
        let tick = self.tick;
        if let Some((entry, used, _)) = self.entries.get_mut(&(stream, id)) {
            *used = tick;
            match entry {
                Entry::Ready(w) => return Ok(w.clone()),
                Entry::Incompatible(detail) => {
                    return Err(incompatible(id, stream, detail.clone()))
                }
                Entry::Unknown(at)
                    if now.saturating_duration_since(*at) < self.policy.unknown_ttl =>
                {
                    return Err(DecodeError::UnknownSchemaId(id))
                }
                Entry::Unknown(_) => {}
            }
        }
        let Some(registry) = registry else {
            return Err(DecodeError::Registry(
                "no schema registry configured".into(),
            ));
        };
        if let Err(wait) = self.take_token(stream) {
            self.stats.throttled[stream as usize] += 1;
            return Err(DecodeError::LookupThrottled {
                id,
                retry_in_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
            });
        }
        self.stats.requests[stream as usize] += 1;
        // Not cached on failure: the registry may be back for the next message.
        let json = registry.fetch(id).map_err(|e| match e {
            Fetch::Denied(d) => DecodeError::RegistryAuth(d),
            Fetch::Unavailable(d) => DecodeError::Registry(d),
        })?;
        let (entry, weight) = match json {
            None => (Entry::Unknown(now), SMALL_ENTRY),
            Some(json) => match resolve(stream, &json, schemas, budget) {
                Ok(w) => (Entry::Ready(Arc::new(w)), json.len().max(SMALL_ENTRY)),
                Err(detail) => (Entry::Incompatible(cut(detail, 512)), SMALL_ENTRY + 512),
            },
        };
        self.put((stream, id), entry.clone(), weight);
        match entry {
            Entry::Ready(w) => Ok(w),
            Entry::Unknown(_) => Err(DecodeError::UnknownSchemaId(id)),
            Entry::Incompatible(detail) => Err(incompatible(id, stream, detail)),
        }
    }
}

/// Parses and checks a writer schema, once per id: no datum of it may cost unbounded work
/// (`guard`), and the reader must be able to read it. apache-avro 0.20 unwraps on some
/// invalid schemas (a record name that is not an Avro name panics in `Name::parse`, found by
/// the `decode` fuzz target), and the schema is whatever a producer registered: a panic here
/// refuses the schema instead of ending the job.
fn resolve(
    stream: Stream,
    json: &str,
    schemas: &Schemas,
    budget: Budget,
) -> Result<Writer, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        resolve_unguarded(stream, json, schemas, budget)
    }))
    .unwrap_or_else(|_| Err("apache-avro could not parse the schema (it panicked)".into()))
}

fn resolve_unguarded(
    stream: Stream,
    json: &str,
    schemas: &Schemas,
    budget: Budget,
) -> Result<Writer, String> {
    let w = Schema::parse_str(json).map_err(|e| e.to_string())?;
    guard::check(&w).map_err(|e| e.to_string())?;
    SchemaCompatibility::can_read(&w, schemas.reader(stream)).map_err(|e| e.to_string())?;
    Ok(Writer::with_budget(stream, Arc::new(w), budget))
}

/// At most `max` bytes of `s`, cut at a character boundary (apache-avro's messages can quote
/// large parts of the schema).
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn incompatible(id: u32, stream: Stream, detail: String) -> DecodeError {
    DecodeError::IncompatibleSchema {
        id,
        record: match stream {
            Stream::Survey => "SurveyResponse",
            Stream::Interaction => "SupportInteraction",
        },
        detail,
    }
}
