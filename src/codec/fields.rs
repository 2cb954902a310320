//! Field values -> validated events. Both decoders (the apache-avro value path and the fast
//! path in `fast.rs`) fill the same slots, one per reader field, and this one module turns
//! slots into events. So validation cannot drift between them: they differ only in how they
//! read bytes.

use super::DecodeError;
use crate::model::{Interaction, Survey, BUCKETS, CONTACT_CHANNELS, SURVEY_CHANNELS};
use std::fmt::Debug;

/// One field's value after a union is unwrapped. Timestamps in milliseconds read as `Long`,
/// exactly as the value path accepted them; any other logical type is `Other`.
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    Str(&'a str),
    Long(i64),
    Int(i32),
    Sym(&'a str),
    Bool(bool),
    /// A value of a type no reader field accepts; kept for the error message.
    Other(&'a dyn Debug),
}

/// Values by reader field index; `None` is absent or null.
pub type Slots<'a> = [Option<Field<'a>>; MAX_FIELDS];

pub const MAX_FIELDS: usize = 16;

/// Reader fields of SurveyResponse, in slot order.
pub const SURVEY_FIELDS: [&str; 11] = [
    "response_id",
    "customer_id",
    "ticket_id",
    "submitted_at",
    "survey_channel",
    "nps_score",
    "csat_score",
    "comment",
    "region",
    "product",
    "customer_tier",
];

/// Reader fields of SupportInteraction, in slot order.
pub const INTERACTION_FIELDS: [&str; 15] = [
    "interaction_id",
    "ticket_id",
    "customer_id",
    "agent_id",
    "team",
    "channel",
    "bucket",
    "category",
    "product",
    "started_at",
    "ended_at",
    "talk_ms",
    "hold_ms",
    "wrap_ms",
    "resolved",
];

/// Typed access to slots, naming the field in every error.
struct Rec<'s, 'a> {
    names: &'static [&'static str],
    slots: &'s Slots<'a>,
}

impl<'a> Rec<'_, 'a> {
    fn get(&self, i: usize) -> (&'static str, Option<Field<'a>>) {
        (self.names[i], self.slots[i])
    }

    fn wrong(name: &'static str, v: Field<'_>) -> DecodeError {
        DecodeError::WrongType {
            field: name,
            // The kind only: the value may be personal data (a comment) and would reach the
            // dead-letter `error` header.
            detail: match v {
                Field::Str(_) => "a string",
                Field::Long(_) => "a long",
                Field::Int(_) => "an int",
                Field::Sym(_) => "an enum symbol",
                Field::Bool(_) => "a boolean",
                Field::Other(_) => "a type no reader field accepts",
            }
            .into(),
        }
    }

    fn opt_str(&self, i: usize) -> Result<Option<String>, DecodeError> {
        match self.get(i) {
            (_, None) => Ok(None),
            (_, Some(Field::Str(s))) => Ok(Some(s.to_owned())),
            (name, Some(v)) => Err(Self::wrong(name, v)),
        }
    }

    fn str(&self, i: usize) -> Result<String, DecodeError> {
        self.opt_str(i)?
            .ok_or(DecodeError::MissingField(self.names[i]))
    }

    /// A required id: present and not blank.
    fn id(&self, i: usize) -> Result<String, DecodeError> {
        let s = self.str(i)?;
        if s.trim().is_empty() {
            return Err(DecodeError::EmptyId(self.names[i]));
        }
        Ok(s)
    }

    fn long(&self, i: usize) -> Result<i64, DecodeError> {
        match self.get(i) {
            (name, None) => Err(DecodeError::MissingField(name)),
            (_, Some(Field::Long(x))) => Ok(x),
            (_, Some(Field::Int(x))) => Ok(i64::from(x)),
            (name, Some(v)) => Err(Self::wrong(name, v)),
        }
    }

    fn non_negative(&self, i: usize) -> Result<i64, DecodeError> {
        let x = self.long(i)?;
        if x < 0 {
            return Err(DecodeError::OutOfRange {
                field: self.names[i],
                detail: format!("{x} < 0"),
            });
        }
        Ok(x)
    }

    fn score(&self, i: usize, lo: i32, hi: i32) -> Result<Option<u8>, DecodeError> {
        match self.get(i) {
            (_, None) => Ok(None),
            (_, Some(Field::Int(x))) if (lo..=hi).contains(&x) => Ok(Some(x as u8)),
            (name, Some(Field::Int(x))) => Err(DecodeError::OutOfRange {
                field: name,
                detail: format!("{x} not in {lo}..={hi}"),
            }),
            (name, Some(v)) => Err(Self::wrong(name, v)),
        }
    }

    fn symbol(&self, i: usize, known: &[&str]) -> Result<String, DecodeError> {
        let s = match self.get(i) {
            (name, None) => return Err(DecodeError::MissingField(name)),
            (_, Some(Field::Sym(s) | Field::Str(s))) => s,
            (name, Some(v)) => return Err(Self::wrong(name, v)),
        };
        if !known.contains(&s) {
            return Err(DecodeError::UnknownSymbol {
                field: self.names[i],
                symbol: s.to_owned(),
            });
        }
        Ok(s.to_owned())
    }

    fn boolean(&self, i: usize) -> Result<bool, DecodeError> {
        match self.get(i) {
            (name, None) => Err(DecodeError::MissingField(name)),
            (_, Some(Field::Bool(b))) => Ok(b),
            (name, Some(v)) => Err(Self::wrong(name, v)),
        }
    }
}

pub fn survey(slots: &Slots<'_>) -> Result<Survey, DecodeError> {
    let f = Rec {
        names: &SURVEY_FIELDS,
        slots,
    };
    Ok(Survey {
        response_id: f.id(0)?,
        customer_id: f.id(1)?,
        ticket_id: f.opt_str(2)?.filter(|t| !t.trim().is_empty()),
        submitted_at_ms: f.long(3)?,
        survey_channel: f.symbol(4, &SURVEY_CHANNELS)?,
        nps_score: f.score(5, 0, 10)?,
        csat_score: f.score(6, 1, 5)?,
        comment: f.opt_str(7)?,
        region: f.opt_str(8)?,
        product: f.opt_str(9)?,
        customer_tier: f.opt_str(10)?,
    })
}

pub fn interaction(slots: &Slots<'_>) -> Result<Interaction, DecodeError> {
    let f = Rec {
        names: &INTERACTION_FIELDS,
        slots,
    };
    let started_at_ms = f.long(9)?;
    let ended_at_ms = f.long(10)?;
    if ended_at_ms < started_at_ms {
        return Err(DecodeError::OutOfRange {
            field: "ended_at",
            detail: format!("{ended_at_ms} is before started_at {started_at_ms}"),
        });
    }
    Ok(Interaction {
        interaction_id: f.id(0)?,
        ticket_id: f.id(1)?,
        customer_id: f.id(2)?,
        agent_id: f.id(3)?,
        team: f.id(4)?,
        channel: f.symbol(5, &CONTACT_CHANNELS)?,
        bucket: f.symbol(6, &BUCKETS)?,
        category: f.str(7)?,
        product: f.opt_str(8)?,
        started_at_ms,
        ended_at_ms,
        talk_ms: f.non_negative(11)?,
        hold_ms: f.non_negative(12)?,
        wrap_ms: f.non_negative(13)?,
        resolved: f.boolean(14)?,
    })
}
