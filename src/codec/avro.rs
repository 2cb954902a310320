//! The reference path: apache-avro decodes the datum with the writer schema (local or from
//! the registry) into a `Value`, and fields are picked by name. This is the source of truth
//! the fast decoder (`fast.rs`) is tested against, and its fallback for anything unusual.
//! Also builds the Avro values the generator encodes.

use super::fields::{self, Field, Slots, INTERACTION_FIELDS, MAX_FIELDS, SURVEY_FIELDS};
use super::DecodeError;
use crate::model::{Interaction, Survey, BUCKETS, CONTACT_CHANNELS, SURVEY_CHANNELS};
use apache_avro::types::Value;
use apache_avro::Schema;

/// apache-avro reads EOF at a union's branch index as null, so a datum cut after its last
/// required field would decode "fine" with its optional tail lost. A sentinel byte after the
/// datum exposes that: a complete datum leaves it unread.
const SENTINEL: [u8; 1] = [0];

fn datum(schema: &Schema, bytes: &[u8]) -> Result<Vec<(String, Value)>, DecodeError> {
    let mut reader = std::io::Read::chain(bytes, &SENTINEL[..]);
    let v = apache_avro::from_avro_datum(schema, &mut reader, None)
        .map_err(|e| DecodeError::Avro(e.to_string()))?;
    let (rest, sentinel) = reader.into_inner();
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    if sentinel.is_empty() {
        return Err(DecodeError::Avro("datum ends early (truncated)".into()));
    }
    match v {
        Value::Record(fields) => Ok(fields),
        _ => Err(DecodeError::Avro("the datum is not a record".into())),
    }
}

/// Maps the record's fields to reader slots by name (Avro's rule for records: fields the
/// reader does not know are ignored, missing optional ones stay None).
fn slots<'a>(fields: &'a [(String, Value)], names: &[&str]) -> Slots<'a> {
    let mut slots: Slots<'a> = [None; MAX_FIELDS];
    for (name, v) in fields {
        if let Some(i) = names.iter().position(|n| n == name) {
            slots[i] = field(v);
        }
    }
    slots
}

fn field(mut v: &Value) -> Option<Field<'_>> {
    while let Value::Union(_, inner) = v {
        v = inner;
    }
    Some(match v {
        Value::Null => return None,
        Value::String(s) => Field::Str(s),
        Value::Long(x) | Value::TimestampMillis(x) => Field::Long(*x),
        Value::Int(x) => Field::Int(*x),
        Value::Enum(_, s) => Field::Sym(s),
        Value::Boolean(b) => Field::Bool(*b),
        other => Field::Other(other),
    })
}

/// The reference decoder: apache-avro's value path.
pub fn decode_survey(writer: &Schema, bytes: &[u8]) -> Result<Survey, DecodeError> {
    let rec = datum(writer, bytes)?;
    fields::survey(&slots(&rec, &SURVEY_FIELDS))
}

/// The reference decoder: apache-avro's value path.
pub fn decode_interaction(writer: &Schema, bytes: &[u8]) -> Result<Interaction, DecodeError> {
    let rec = datum(writer, bytes)?;
    fields::interaction(&slots(&rec, &INTERACTION_FIELDS))
}

fn opt(v: &Option<String>) -> Value {
    match v {
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn opt_int(v: Option<i32>) -> Value {
    match v {
        Some(x) => Value::Union(1, Box::new(Value::Int(x))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn symbol(known: &[&str], s: &str) -> Value {
    let i = known.iter().position(|k| *k == s).unwrap_or(0);
    Value::Enum(i as u32, s.to_string())
}

/// Builds the Avro record for a survey. `nps`/`csat` are raw ints so the generator can
/// write out-of-range values on purpose.
pub fn survey_value(s: &Survey, nps: Option<i32>, csat: Option<i32>) -> Value {
    Value::Record(vec![
        ("response_id".into(), Value::String(s.response_id.clone())),
        ("customer_id".into(), Value::String(s.customer_id.clone())),
        ("ticket_id".into(), opt(&s.ticket_id)),
        (
            "submitted_at".into(),
            Value::TimestampMillis(s.submitted_at_ms),
        ),
        (
            "survey_channel".into(),
            symbol(&SURVEY_CHANNELS, &s.survey_channel),
        ),
        ("nps_score".into(), opt_int(nps)),
        ("csat_score".into(), opt_int(csat)),
        ("comment".into(), opt(&s.comment)),
        ("region".into(), opt(&s.region)),
        ("product".into(), opt(&s.product)),
        ("customer_tier".into(), opt(&s.customer_tier)),
    ])
}

pub fn interaction_value(i: &Interaction) -> Value {
    Value::Record(vec![
        (
            "interaction_id".into(),
            Value::String(i.interaction_id.clone()),
        ),
        ("ticket_id".into(), Value::String(i.ticket_id.clone())),
        ("customer_id".into(), Value::String(i.customer_id.clone())),
        ("agent_id".into(), Value::String(i.agent_id.clone())),
        ("team".into(), Value::String(i.team.clone())),
        ("channel".into(), symbol(&CONTACT_CHANNELS, &i.channel)),
        ("bucket".into(), symbol(&BUCKETS, &i.bucket)),
        ("category".into(), Value::String(i.category.clone())),
        ("product".into(), opt(&i.product)),
        ("started_at".into(), Value::TimestampMillis(i.started_at_ms)),
        ("ended_at".into(), Value::TimestampMillis(i.ended_at_ms)),
        ("talk_ms".into(), Value::Long(i.talk_ms)),
        ("hold_ms".into(), Value::Long(i.hold_ms)),
        ("wrap_ms".into(), Value::Long(i.wrap_ms)),
        ("resolved".into(), Value::Boolean(i.resolved)),
    ])
}

/// Encodes a record value as a bare Avro datum (no container, no header).
pub fn encode(schema: &Schema, v: Value) -> Result<Vec<u8>, apache_avro::Error> {
    apache_avro::to_avro_datum(schema, v)
}
