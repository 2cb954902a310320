//! Message payload -> validated event. Two wire formats: the Confluent framing (magic byte 0,
//! 4-byte big-endian schema id, Avro datum; writer schema fetched from the registry once per
//! id) and bare Avro datums written with the local schemas in `schemas/`.

pub mod avro;
mod error;
pub mod fast;
pub mod fields;
pub mod guard;

pub use error::{DecodeError, Disposition};

use crate::model::{Event, Stream};
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
}

impl Writer {
    pub fn new(stream: Stream, schema: Arc<Schema>) -> Self {
        let names: &[&str] = match stream {
            Stream::Survey => &fields::SURVEY_FIELDS,
            Stream::Interaction => &fields::INTERACTION_FIELDS,
        };
        Writer {
            plan: fast::Plan::compile(&schema, names),
            schema,
        }
    }

    /// Whether this writer schema gets the fast path.
    pub fn has_plan(&self) -> bool {
        self.plan.is_some()
    }

    /// Fast path when the plan reads the datum and it validates; otherwise apache-avro, so
    /// every error is the reference decoder's own.
    pub fn decode(&self, stream: Stream, datum: &[u8]) -> Result<Event, DecodeError> {
        if let Some(slots) = self.plan.as_ref().and_then(|p| p.read(datum)) {
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
    pub fn decode_reference(&self, stream: Stream, datum: &[u8]) -> Result<Event, DecodeError> {
        match stream {
            Stream::Survey => avro::decode_survey(&self.schema, datum).map(Event::Survey),
            Stream::Interaction => {
                avro::decode_interaction(&self.schema, datum).map(Event::Interaction)
            }
        }
    }
}

/// A writer schema ready to use, or why it cannot be used
/// (0 = unknown id, 1 = incompatible, with the detail).
type CachedSchema = Result<Arc<Writer>, (u8, String)>;

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
    /// Writer schema per (stream, id), checked once against the reader schema.
    cache: HashMap<(Stream, u32), CachedSchema>,
    /// When each unknown id was last asked for: asked again after `unknown_ttl`, since a
    /// producer may register its schema after its first message arrived.
    unknown_at: HashMap<(Stream, u32), std::time::Instant>,
    unknown_ttl: std::time::Duration,
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
        let local = [
            Arc::new(Writer::new(Stream::Survey, schemas.survey.clone())),
            Arc::new(Writer::new(
                Stream::Interaction,
                schemas.interaction.clone(),
            )),
        ];
        Decoder {
            format,
            schemas,
            registry,
            cache: HashMap::new(),
            unknown_at: HashMap::new(),
            unknown_ttl: std::time::Duration::from_secs(60),
            local,
            reference_only: false,
        }
    }

    /// How long an id the registry did not know stays unknown before it is asked again.
    pub fn unknown_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.unknown_ttl = ttl;
        self
    }

    /// Turns the fast path off, leaving apache-avro's value path alone.
    pub fn reference_only(mut self) -> Self {
        self.reference_only = true;
        self
    }

    /// Seeds the writer-schema cache; used by tests and by the generator's round trip.
    pub fn preload(&mut self, stream: Stream, id: u32, schema: Arc<Schema>) {
        self.cache
            .insert((stream, id), Ok(Arc::new(Writer::new(stream, schema))));
    }

    /// Seeds the cache with an id the registry does not know.
    pub fn preload_unknown(&mut self, stream: Stream, id: u32) {
        self.cache.insert((stream, id), Err((0, String::new())));
    }

    pub fn decode(&mut self, stream: Stream, payload: &[u8]) -> Result<Event, DecodeError> {
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
        let expired = self
            .unknown_at
            .get(&(stream, id))
            .is_some_and(|t| t.elapsed() >= self.unknown_ttl);
        if let Some(cached) = self.cache.get(&(stream, id)).filter(|_| !expired) {
            return cached
                .clone()
                .map_err(|(kind, detail)| cached_error(kind, id, stream, detail));
        }
        let Some(registry) = &self.registry else {
            return Err(DecodeError::Registry(
                "no schema registry configured".into(),
            ));
        };
        // Not cached on failure: the registry may be back for the next message.
        let json = registry.fetch(id).map_err(|e| match e {
            Fetch::Denied(d) => DecodeError::RegistryAuth(d),
            Fetch::Unavailable(d) => DecodeError::Registry(d),
        })?;
        let entry = match json {
            None => {
                self.unknown_at
                    .insert((stream, id), std::time::Instant::now());
                Err((0, String::new()))
            }
            Some(json) => match Schema::parse_str(&json) {
                Err(e) => Err((1, e.to_string())),
                // Decided once per schema: no datum of it may cost unbounded work.
                Ok(w) => match guard::check(&w).map_err(|e| e.to_string()).and_then(|()| {
                    SchemaCompatibility::can_read(&w, self.schemas.reader(stream))
                        .map_err(|e| e.to_string())
                }) {
                    Ok(()) => Ok(Arc::new(Writer::new(stream, Arc::new(w)))),
                    Err(e) => Err((1, e)),
                },
            },
        };
        self.cache.insert((stream, id), entry.clone());
        entry.map_err(|(kind, detail)| cached_error(kind, id, stream, detail))
    }
}

fn cached_error(kind: u8, id: u32, stream: Stream, detail: String) -> DecodeError {
    match kind {
        0 => DecodeError::UnknownSchemaId(id),
        _ => DecodeError::IncompatibleSchema {
            id,
            record: match stream {
                Stream::Survey => "SurveyResponse",
                Stream::Interaction => "SupportInteraction",
            },
            detail,
        },
    }
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
