//! Avro datum <-> event mapping. The writer schema (local or from the registry) decodes the
//! datum; fields are then picked by name, which is Avro's own resolution rule for records:
//! fields the reader does not know are ignored, optional fields the writer lacks are None.
//! The schema is resolved once per writer schema (see `Decoder`), never per record.

use super::DecodeError;
use crate::model::{Interaction, Survey, BUCKETS, CONTACT_CHANNELS, SURVEY_CHANNELS};
use apache_avro::types::Value;
use apache_avro::Schema;
use std::collections::HashMap;

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
        other => Err(DecodeError::Avro(format!(
            "expected a record, got {other:?}"
        ))),
    }
}

struct Fields(HashMap<String, Value>);

impl Fields {
    fn new(v: Vec<(String, Value)>) -> Self {
        Fields(v.into_iter().collect())
    }

    /// The field's value with a union unwrapped; None when absent or null.
    fn get(&self, name: &'static str) -> Option<&Value> {
        let mut v = self.0.get(name)?;
        while let Value::Union(_, inner) = v {
            v = inner;
        }
        (!matches!(v, Value::Null)).then_some(v)
    }

    fn wrong(name: &'static str, v: &Value) -> DecodeError {
        DecodeError::WrongType {
            field: name,
            detail: format!("{v:?}").chars().take(60).collect(),
        }
    }

    fn opt_str(&self, name: &'static str) -> Result<Option<String>, DecodeError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Self::wrong(name, v)),
        }
    }

    fn str(&self, name: &'static str) -> Result<String, DecodeError> {
        self.opt_str(name)?.ok_or(DecodeError::MissingField(name))
    }

    /// A required id: present and not blank.
    fn id(&self, name: &'static str) -> Result<String, DecodeError> {
        let s = self.str(name)?;
        if s.trim().is_empty() {
            return Err(DecodeError::EmptyId(name));
        }
        Ok(s)
    }

    fn long(&self, name: &'static str) -> Result<i64, DecodeError> {
        match self.get(name) {
            None => Err(DecodeError::MissingField(name)),
            Some(Value::Long(x) | Value::TimestampMillis(x)) => Ok(*x),
            Some(Value::Int(x)) => Ok(i64::from(*x)),
            Some(v) => Err(Self::wrong(name, v)),
        }
    }

    fn non_negative(&self, name: &'static str) -> Result<i64, DecodeError> {
        let x = self.long(name)?;
        if x < 0 {
            return Err(DecodeError::OutOfRange {
                field: name,
                detail: format!("{x} < 0"),
            });
        }
        Ok(x)
    }

    fn score(&self, name: &'static str, lo: i32, hi: i32) -> Result<Option<u8>, DecodeError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Int(x)) if (lo..=hi).contains(x) => Ok(Some(*x as u8)),
            Some(Value::Int(x)) => Err(DecodeError::OutOfRange {
                field: name,
                detail: format!("{x} not in {lo}..={hi}"),
            }),
            Some(v) => Err(Self::wrong(name, v)),
        }
    }

    fn symbol(&self, name: &'static str, known: &[&str]) -> Result<String, DecodeError> {
        let s = match self.get(name) {
            None => return Err(DecodeError::MissingField(name)),
            Some(Value::Enum(_, s) | Value::String(s)) => s,
            Some(v) => return Err(Self::wrong(name, v)),
        };
        if !known.contains(&s.as_str()) {
            return Err(DecodeError::UnknownSymbol {
                field: name,
                symbol: s.clone(),
            });
        }
        Ok(s.clone())
    }

    fn boolean(&self, name: &'static str) -> Result<bool, DecodeError> {
        match self.get(name) {
            None => Err(DecodeError::MissingField(name)),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(v) => Err(Self::wrong(name, v)),
        }
    }
}

pub fn decode_survey(writer: &Schema, bytes: &[u8]) -> Result<Survey, DecodeError> {
    let f = Fields::new(datum(writer, bytes)?);
    Ok(Survey {
        response_id: f.id("response_id")?,
        customer_id: f.id("customer_id")?,
        ticket_id: f.opt_str("ticket_id")?.filter(|t| !t.trim().is_empty()),
        submitted_at_ms: f.long("submitted_at")?,
        survey_channel: f.symbol("survey_channel", &SURVEY_CHANNELS)?,
        nps_score: f.score("nps_score", 0, 10)?,
        csat_score: f.score("csat_score", 1, 5)?,
        comment: f.opt_str("comment")?,
        region: f.opt_str("region")?,
        product: f.opt_str("product")?,
        customer_tier: f.opt_str("customer_tier")?,
    })
}

pub fn decode_interaction(writer: &Schema, bytes: &[u8]) -> Result<Interaction, DecodeError> {
    let f = Fields::new(datum(writer, bytes)?);
    let started_at_ms = f.long("started_at")?;
    let ended_at_ms = f.long("ended_at")?;
    if ended_at_ms < started_at_ms {
        return Err(DecodeError::OutOfRange {
            field: "ended_at",
            detail: format!("{ended_at_ms} is before started_at {started_at_ms}"),
        });
    }
    Ok(Interaction {
        interaction_id: f.id("interaction_id")?,
        ticket_id: f.id("ticket_id")?,
        customer_id: f.id("customer_id")?,
        agent_id: f.id("agent_id")?,
        team: f.id("team")?,
        channel: f.symbol("channel", &CONTACT_CHANNELS)?,
        bucket: f.symbol("bucket", &BUCKETS)?,
        category: f.str("category")?,
        product: f.opt_str("product")?,
        started_at_ms,
        ended_at_ms,
        talk_ms: f.non_negative("talk_ms")?,
        hold_ms: f.non_negative("hold_ms")?,
        wrap_ms: f.non_negative("wrap_ms")?,
        resolved: f.boolean("resolved")?,
    })
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
