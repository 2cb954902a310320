use thiserror::Error;

/// Why a message could not become an event; [`DecodeError::disposition`] says what happens
/// to the message, decided here once.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("payload is empty")]
    Empty,
    #[error("bad magic byte {0:#04x}: expected 0x00 (Confluent wire format)")]
    BadMagic(u8),
    #[error("payload of {0} bytes is shorter than the 5-byte Confluent header")]
    ShortHeader(usize),
    #[error("schema id {0} is not known to the schema registry")]
    UnknownSchemaId(u32),
    #[error("schema registry request failed: {0}")]
    Registry(String),
    /// Past `codec.schema_lookups_per_second` for the topic: asked again in `retry_in_ms`.
    #[error("looking up schema id {id} waits {retry_in_ms} ms (codec.schema_lookups_per_second)")]
    LookupThrottled { id: u32, retry_in_ms: u64 },
    #[error(
        "schema registry refused the request ({0}): check codec.schema_registry_user and \
         CXP_SCHEMA_REGISTRY_PASSWORD, and that this user may read schemas"
    )]
    RegistryAuth(String),
    #[error("writer schema {id} cannot be read as {record}: {detail}")]
    IncompatibleSchema {
        id: u32,
        record: &'static str,
        detail: String,
    },
    #[error("malformed Avro: {0}")]
    Avro(String),
    #[error("{0} trailing bytes after the Avro record")]
    Trailing(usize),
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{0}` is empty")]
    EmptyId(&'static str),
    #[error("field `{field}` is out of range: {detail}")]
    OutOfRange { field: &'static str, detail: String },
    #[error("field `{field}` has unknown enum symbol {symbol:?}")]
    UnknownSymbol { field: &'static str, symbol: String },
    #[error("field `{field}` has the wrong type: {detail}")]
    WrongType { field: &'static str, detail: String },
    /// Well-formed, perhaps, but past what one message may cost (`codec::budget`).
    #[error("resource limit {limit} = {max} exceeded: {detail}")]
    ResourceLimit {
        limit: &'static str,
        max: u64,
        detail: String,
    },
}

impl DecodeError {
    /// Low-cardinality label for metrics and the dead-letter `reason` header.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty | DecodeError::ShortHeader(_) => "truncated_header",
            DecodeError::BadMagic(_) => "bad_magic_byte",
            DecodeError::UnknownSchemaId(_) => "unknown_schema_id",
            DecodeError::Registry(_) => "schema_registry_unavailable",
            DecodeError::LookupThrottled { .. } => "schema_lookup_throttled",
            DecodeError::RegistryAuth(_) => "schema_registry_auth",
            DecodeError::IncompatibleSchema { .. } => "incompatible_schema",
            DecodeError::Avro(_) | DecodeError::Trailing(_) => "malformed_avro",
            DecodeError::MissingField(_) | DecodeError::EmptyId(_) => "missing_field",
            DecodeError::OutOfRange { .. } => "out_of_range",
            DecodeError::UnknownSymbol { .. } => "unknown_enum_symbol",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::ResourceLimit { .. } => "resource_limit",
        }
    }

    /// What to do with the message, decided once here (Arroyo's classification).
    pub fn disposition(&self) -> Disposition {
        match self {
            // A registry outage is not the message's fault: retry instead of dead-lettering.
            // Neither is a throttled lookup: which messages count must not depend on how
            // fast they came.
            DecodeError::Registry(_) | DecodeError::LookupThrottled { .. } => Disposition::Retry,
            // Wrong credentials or permissions fail every message alike and retrying cannot
            // fix them: stop with the message instead of stalling silently.
            DecodeError::RegistryAuth(_) => Disposition::Stop,
            other => Disposition::DeadLetter(other.reason()),
        }
    }
}

impl DecodeError {
    /// For a retried message: when it is worth trying again, if this error knows.
    pub fn retry_in(&self) -> Option<std::time::Duration> {
        match self {
            DecodeError::LookupThrottled { retry_in_ms, .. } => {
                Some(std::time::Duration::from_millis(*retry_in_ms))
            }
            _ => None,
        }
    }
}

/// What a decode failure means for its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The message itself is unusable: to the dead-letter path with this reason.
    DeadLetter(&'static str),
    /// The infrastructure failed: try the same message again later.
    Retry,
    /// No message can succeed until an operator acts: stop the job.
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_faults_retry_or_stop_and_everything_else_is_dead_lettered_with_its_reason() {
        assert_eq!(
            DecodeError::Registry("503".into()).disposition(),
            Disposition::Retry
        );
        assert_eq!(
            DecodeError::RegistryAuth("401".into()).disposition(),
            Disposition::Stop
        );
        for e in [
            DecodeError::Empty,
            DecodeError::BadMagic(1),
            DecodeError::UnknownSchemaId(7),
            DecodeError::Trailing(3),
            DecodeError::MissingField("response_id"),
        ] {
            assert_eq!(e.disposition(), Disposition::DeadLetter(e.reason()), "{e}");
        }
    }
}
