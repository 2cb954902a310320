//! Message payload -> validated event. Two wire formats: the Confluent framing (magic byte 0,
//! 4-byte big-endian schema id, Avro datum; writer schema fetched from the registry once per
//! id) and bare Avro datums written with the local schemas in `schemas/`.

pub mod avro;
pub mod budget;
mod cache;
mod error;
pub mod fast;
pub mod fields;
pub mod guard;

pub use budget::Budget;
pub use cache::{LookupPolicy, LookupStats};
pub use error::{DecodeError, Disposition};

use crate::model::{Event, Stream};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Once};

/// Caps what a corrupt length prefix can make the Avro reader allocate.
const MAX_AVRO_ALLOCATION: usize = 16 * 1024 * 1024;
static AVRO_LIMIT: Once = Once::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// Magic byte + schema id + datum; needs `codec.schema_registry_url`.
    #[default]
    Confluent,
    /// A bare datum written with the local schema.
    Avro,
}

pub const SURVEY_SCHEMA: &str = include_str!("../../schemas/survey_response.avsc");
pub const INTERACTION_SCHEMA: &str = include_str!("../../schemas/support_interaction.avsc");

/// The reader schemas: the contract this build understands.
#[derive(Clone, Debug)]
pub struct Schemas {
    pub survey: Arc<Schema>,
    pub interaction: Arc<Schema>,
    pub survey_json: String,
    pub interaction_json: String,
}

/// A reader schema that could not be read or parsed, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Parse {
        file: &'static str,
        source: apache_avro::Error,
    },
}

impl Schemas {
    /// The schemas compiled into the binary.
    pub fn embedded() -> Result<Self, SchemaError> {
        Self::parse(SURVEY_SCHEMA.to_string(), INTERACTION_SCHEMA.to_string())
    }

    /// Schemas from a directory holding survey_response.avsc and support_interaction.avsc.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).map_err(|source| SchemaError::Read {
                path: dir.join(f).display().to_string(),
                source,
            })
        };
        Self::parse(
            read("survey_response.avsc")?,
            read("support_interaction.avsc")?,
        )
    }

    /// From `dir` when configured, else the compiled-in copies.
    pub fn from_dir(dir: Option<&Path>) -> Result<Self, SchemaError> {
        dir.map_or_else(Self::embedded, Self::load)
    }

    fn parse(survey_json: String, interaction_json: String) -> Result<Self, SchemaError> {
        let p = |file: &'static str, s: &str| {
            Schema::parse_str(s).map_err(|source| SchemaError::Parse { file, source })
        };
        Ok(Schemas {
            survey: Arc::new(p("survey_response.avsc", &survey_json)?),
            interaction: Arc::new(p("support_interaction.avsc", &interaction_json)?),
            survey_json,
            interaction_json,
        })
    }

    pub fn reader(&self, s: Stream) -> &Arc<Schema> {
        match s {
            Stream::Survey => &self.survey,
            Stream::Interaction => &self.interaction,
        }
    }
}

/// A writer schema checked against the reader, with its fast-path plan when it has one.
pub struct Writer {
    schema: Arc<Schema>,
    plan: Option<fast::Plan>,
    budget: Budget,
}

impl Writer {
    pub fn new(stream: Stream, schema: Arc<Schema>) -> Self {
        Self::with_budget(stream, schema, Budget::default())
    }

    pub fn with_budget(stream: Stream, schema: Arc<Schema>, budget: Budget) -> Self {
        let names: &[&str] = match stream {
            Stream::Survey => &fields::SURVEY_FIELDS,
            Stream::Interaction => &fields::INTERACTION_FIELDS,
        };
        Writer {
            plan: fast::Plan::compile(&schema, names),
            schema,
            budget,
        }
    }

    /// Whether this writer schema gets the fast path.
    pub fn has_plan(&self) -> bool {
        self.plan.is_some()
    }

    /// Fast path when the plan reads the datum and it validates; otherwise apache-avro, so
    /// every error is the reference decoder's own.
    pub fn decode(&self, stream: Stream, datum: &[u8]) -> Result<Event, DecodeError> {
        let max = self.budget.max_values;
        if let Some(slots) = self.plan.as_ref().and_then(|p| p.read(datum, max)) {
            let ev = match stream {
                Stream::Survey => fields::survey(&slots).map(Event::Survey),
                Stream::Interaction => fields::interaction(&slots).map(Event::Interaction),
            };
            if ev.is_ok() {
                return ev;
            }
        }
        self.decode_reference(stream, datum)
    }

    /// apache-avro's value path only: the source of truth the fast path is tested against.
    /// It runs only on a datum the bounded walk read whole within the budget.
    pub fn decode_reference(&self, stream: Stream, datum: &[u8]) -> Result<Event, DecodeError> {
        budget::check(&self.schema, datum, &self.budget)?;
        match stream {
            Stream::Survey => avro::decode_survey(&self.schema, datum).map(Event::Survey),
            Stream::Interaction => {
                avro::decode_interaction(&self.schema, datum).map(Event::Interaction)
            }
        }
    }
}

/// Why a writer schema could not be fetched, classified once where the request was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// Credentials or permissions: no retry can help.
    Denied(String),
    /// 5xx, timeout, connection: the registry may be back for the next attempt.
    Unavailable(String),
}

/// Where the Confluent framing's writer schemas come from. The registry client implements it
/// on the I/O floor (`source::registry`); the decoder stays pure and testable without one.
pub trait SchemaSource: Send {
    /// The schema's JSON, `Ok(None)` for an id the source does not know.
    fn fetch(&self, id: u32) -> Result<Option<String>, Fetch>;
}

/// Resolves writer schemas and decodes payloads. One per consuming thread.
pub struct Decoder {
    format: WireFormat,
    schemas: Schemas,
    registry: Option<Box<dyn SchemaSource>>,
    /// Writer schemas per (stream, id), bounded and fetched at a bounded rate.
    cache: cache::Cache,
    budget: Budget,
    /// The reader schemas as writers, for bare Avro.
    local: [Arc<Writer>; 2],
    /// Decode with apache-avro only (for benchmarks and agreement tests).
    reference_only: bool,
}

impl Decoder {
    pub fn new(
        format: WireFormat,
        schemas: Schemas,
        registry: Option<Box<dyn SchemaSource>>,
    ) -> Self {
        AVRO_LIMIT.call_once(|| {
            apache_avro::max_allocation_bytes(MAX_AVRO_ALLOCATION);
        });
        let budget = Budget::default();
        Decoder {
            format,
            local: local_writers(&schemas, budget),
            schemas,
            registry,
            cache: cache::Cache::new(LookupPolicy::default(), Arc::new(std::time::Instant::now)),
            budget,
            reference_only: false,
        }
    }

    /// What one message may cost (`codec.max_message_bytes`, `codec.max_values_per_message`).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self.local = local_writers(&self.schemas, budget);
        self
    }

    /// How writer schemas are looked up and how many are kept.
    pub fn lookups(mut self, policy: LookupPolicy) -> Self {
        self.cache = cache::Cache::new(policy, self.cache.now.clone());
        self
    }

    /// How long an id the registry did not know stays unknown before it is asked again.
    pub fn unknown_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.cache.policy.unknown_ttl = ttl;
        self
    }

    /// Replaces the cache's clock (tests of the rate limit move time by hand).
    pub fn clock(mut self, now: Arc<dyn Fn() -> std::time::Instant + Send + Sync>) -> Self {
        self.cache = cache::Cache::new(self.cache.policy, now);
        self
    }

    /// Turns the fast path off, leaving apache-avro's value path alone.
    pub fn reference_only(mut self) -> Self {
        self.reference_only = true;
        self
    }

    /// Lookups, throttles and evictions so far, for the metrics.
    pub fn lookup_stats(&self) -> LookupStats {
        self.cache.stats
    }

    /// Seeds the writer-schema cache; used by tests and by the generator's round trip.
    pub fn preload(&mut self, stream: Stream, id: u32, schema: Arc<Schema>) {
        let weight = schema.canonical_form().len();
        let w = Writer::with_budget(stream, schema, self.budget);
        self.cache.insert_ready(stream, id, w, weight);
    }

    /// Seeds the cache with an id the registry does not know.
    pub fn preload_unknown(&mut self, stream: Stream, id: u32) {
        self.cache.insert_unknown(stream, id);
    }

    pub fn decode(&mut self, stream: Stream, payload: &[u8]) -> Result<Event, DecodeError> {
        self.budget.check_size(payload.len())?;
        let (writer, datum) = match self.format {
            WireFormat::Avro => (self.local[stream as usize].clone(), payload),
            WireFormat::Confluent => {
                let (id, datum) = split_confluent(payload)?;
                (self.writer(stream, id)?, datum)
            }
        };
        if self.reference_only {
            writer.decode_reference(stream, datum)
        } else {
            writer.decode(stream, datum)
        }
    }

    /// The writer for a schema id, fetched and checked on first use.
    pub fn writer(&mut self, stream: Stream, id: u32) -> Result<Arc<Writer>, DecodeError> {
        let registry = self.registry.as_deref();
        self.cache
            .writer(stream, id, registry, &self.schemas, self.budget)
    }
}

fn local_writers(schemas: &Schemas, budget: Budget) -> [Arc<Writer>; 2] {
    [
        Arc::new(Writer::with_budget(
            Stream::Survey,
            schemas.survey.clone(),
            budget,
        )),
        Arc::new(Writer::with_budget(
            Stream::Interaction,
            schemas.interaction.clone(),
            budget,
        )),
    ]
}

/// Splits the Confluent framing: magic byte 0, then a big-endian schema id.
pub fn split_confluent(payload: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match payload {
        [] => Err(DecodeError::Empty),
        [m, ..] if *m != 0 => Err(DecodeError::BadMagic(*m)),
        [0, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => Err(DecodeError::ShortHeader(payload.len())),
    }
}

/// Prepends the Confluent framing.
pub fn frame_confluent(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(datum.len() + 5);
    v.push(0);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(datum);
    v
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod agreement;

#[cfg(test)]
mod budget_tests;
