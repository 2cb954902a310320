//! Bounded work per message, whichever decoder reads it.
//!
//! The schema guard (`guard.rs`) refuses, once per writer schema, what no datum could be read
//! with in bounded work. What is left is bounded per message here:
//!
//! - the payload's size (`codec.max_message_bytes`);
//! - the values a datum holds: every field, array item, map entry and union branch counts one
//!   (`codec.max_values_per_message`), so a record of a thousand nulls repeated per array item
//!   costs its real price and not one byte's;
//! - lengths: a string, bytes, fixed or array/map block that claims more than the bytes left
//!   is malformed before anything is allocated for it (apache-avro would reserve the claim
//!   first: up to 16,000,000 values per block). An item takes at least one byte in every
//!   writer schema the guard admits, so no honest block claims more items than bytes remain.
//!
//! The fast decoder counts values itself; the apache-avro fallback runs only after [`check`]
//! has walked the whole datum within the budget, so it never runs where the walk refused and
//! its work and allocations are those the walk counted.

use super::guard::MAX_SCHEMA_DEPTH;
use super::DecodeError;
use apache_avro::schema::{NamesRef, Namespace, ResolvedSchema};
use apache_avro::Schema;

/// What one message may cost to decode. Past either limit it is dead-lettered as
/// `resource_limit`, its `error` header naming the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub max_message_bytes: usize,
    pub max_values: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            // Kafka's own default record size limit (message.max.bytes, ~1 MiB).
            max_message_bytes: 1_048_576,
            // The contracts hold ~15 values; this leaves room for evolved writers with lists.
            max_values: 100_000,
        }
    }
}

impl Budget {
    /// The payload-size rule, applied before any decoding.
    pub fn check_size(&self, len: usize) -> Result<(), DecodeError> {
        if len > self.max_message_bytes {
            return Err(DecodeError::ResourceLimit {
                limit: "codec.max_message_bytes",
                max: self.max_message_bytes as u64,
                detail: format!("the payload has {len} bytes"),
            });
        }
        Ok(())
    }

    pub(super) fn values_exceeded(&self) -> DecodeError {
        DecodeError::ResourceLimit {
            limit: "codec.max_values_per_message",
            max: self.max_values,
            detail: "the datum holds more values (fields, items, entries)".into(),
        }
    }
}

/// Walks `datum` as `schema` describes it, within `budget`, allocating nothing per value.
/// Ok means apache-avro may decode it: the walk read it to its end (or stopped at trailing
/// bytes apache-avro reports itself) without passing a limit.
pub fn check(schema: &Schema, datum: &[u8], budget: &Budget) -> Result<(), DecodeError> {
    let resolved =
        ResolvedSchema::try_from(schema).map_err(|e| DecodeError::Avro(e.to_string()))?;
    let mut w = Walk {
        b: datum,
        pos: 0,
        values: 0,
        max_values: budget.max_values,
        names: resolved.get_names(),
    };
    match w.walk(schema, &None, 0) {
        Ok(()) => Ok(()),
        Err(Stop::Values) => Err(budget.values_exceeded()),
        Err(Stop::Malformed(why)) => Err(DecodeError::Avro(why)),
    }
}

enum Stop {
    Values,
    Malformed(String),
}

struct Walk<'s> {
    b: &'s [u8],
    pos: usize,
    values: u64,
    max_values: u64,
    names: &'s NamesRef<'s>,
}

fn truncated() -> Stop {
    Stop::Malformed("datum ends early (truncated)".into())
}

impl Walk<'_> {
    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    /// Zig-zag varint, at most 10 bytes, as apache-avro reads it.
    fn long(&mut self) -> Result<i64, Stop> {
        let mut z = 0u64;
        for j in 0..10 {
            let byte = *self.b.get(self.pos).ok_or_else(truncated)?;
            self.pos += 1;
            z |= u64::from(byte & 0x7f) << (j * 7);
            if byte & 0x80 == 0 {
                return Ok(if z & 1 == 0 {
                    (z >> 1) as i64
                } else {
                    !(z >> 1) as i64
                });
            }
        }
        Err(Stop::Malformed(
            "a variable-length integer runs past 10 bytes".into(),
        ))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<(), Stop> {
        if n > self.remaining() {
            return Err(Stop::Malformed(format!(
                "{what} of {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        self.pos += n;
        Ok(())
    }

    fn length_prefixed(&mut self, what: &str) -> Result<(), Stop> {
        let n = self.long()?;
        let n = usize::try_from(n)
            .map_err(|_| Stop::Malformed(format!("{what} with negative length {n}")))?;
        self.take(n, what)
    }

    fn count(&mut self) -> Result<(), Stop> {
        self.values += 1;
        if self.values > self.max_values {
            return Err(Stop::Values);
        }
        Ok(())
    }

    fn walk(&mut self, s: &Schema, ns: &Namespace, depth: usize) -> Result<(), Stop> {
        self.count()?;
        // The guard bounds writer nesting; this also covers local schemas it never saw.
        if depth > 2 * MAX_SCHEMA_DEPTH + 2 {
            return Err(Stop::Malformed("the schema nests too deep".into()));
        }
        match s {
            Schema::Null => {}
            Schema::Boolean => self.take(1, "a boolean")?,
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                self.long()?;
            }
            Schema::Float => self.take(4, "a float")?,
            Schema::Double => self.take(8, "a double")?,
            Schema::Duration => self.take(12, "a duration")?,
            Schema::Bytes | Schema::BigDecimal | Schema::Uuid => self.length_prefixed("bytes")?,
            Schema::String => self.length_prefixed("a string")?,
            Schema::Fixed(f) => self.take(f.size, "a fixed")?,
            Schema::Decimal(d) => self.walk(&d.inner, ns, depth + 1)?,
            Schema::Union(u) => {
                let i = self.long()?;
                let v = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| {
                        Stop::Malformed(format!(
                            "union branch {i} of {} does not exist",
                            u.variants().len()
                        ))
                    })?;
                self.walk(v, ns, depth + 1)?;
            }
            Schema::Array(a) => self.blocks(|w| w.walk(&a.items, ns, depth + 1))?,
            Schema::Map(m) => self.blocks(|w| {
                w.count()?;
                w.length_prefixed("a map key")?;
                w.walk(&m.types, ns, depth + 1)
            })?,
            Schema::Record(r) => {
                let fq = r.name.fully_qualified_name(ns);
                for f in &r.fields {
                    self.walk(&f.schema, &fq.namespace, depth + 1)?;
                }
            }
            Schema::Ref { name } => {
                let fq = name.fully_qualified_name(ns);
                let def = self.names.get(&fq).ok_or_else(|| {
                    Stop::Malformed(format!("type {} is not defined", fq.fullname(None)))
                })?;
                self.walk(def, &fq.namespace, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Array and map blocks: a count (negative: followed by a byte size), until count 0.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), Stop>) -> Result<(), Stop> {
        loop {
            let n = self.long()?;
            if n == 0 {
                return Ok(());
            }
            if n < 0 {
                self.long()?;
            }
            let count = n.unsigned_abs();
            if count > self.remaining() as u64 {
                return Err(Stop::Malformed(format!(
                    "a block claims {count} items but only {} bytes remain",
                    self.remaining()
                )));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}
