//! The fast decoder: reads a datum's bytes straight into reader slots, borrowing strings from
//! the payload, with a plan compiled once per writer schema.
//!
//! apache-avro stays the source of truth: it parses every schema, checks compatibility, and
//! decodes whatever this path declines. A plan is only compiled for writer schemas made of
//! types whose bytes need no validation beyond what is done here (no decimal, uuid, duration
//! or named references), and at decode time anything odd (a short read, a bad union index,
//! invalid UTF-8, trailing bytes) returns `None`, so the caller re-decodes with apache-avro
//! and reports exactly its error. The agreement tests in `tests.rs` hold the two together.

use super::fields::{Field, Slots, MAX_FIELDS};
use apache_avro::Schema;

/// A writer type as the reader needs it: enough to read or skip the bytes.
#[derive(Debug)]
enum W {
    Null,
    Boolean,
    Int,
    Long,
    /// timestamp-millis: a long the reader accepts as a time.
    TsMillis,
    /// date, time-millis: an int no reader field accepts.
    OtherInt,
    /// time-micros, timestamp-micros/nanos, local timestamps: likewise for longs.
    OtherLong,
    Float,
    Double,
    Bytes,
    Str,
    Enum(Vec<String>),
    Fixed(usize),
    Union(Vec<W>),
    Array(Box<W>),
    Map(Box<W>),
    Record(Vec<W>),
}

/// Per writer field: the reader slot it fills (if the reader knows it) and its type.
#[derive(Debug)]
pub struct Plan {
    fields: Vec<(Option<usize>, W)>,
}

impl Plan {
    /// None when the writer schema uses something this path does not handle; the caller
    /// then always uses apache-avro for it.
    pub fn compile(writer: &Schema, reader_fields: &[&str]) -> Option<Plan> {
        let Schema::Record(r) = writer else {
            return None;
        };
        let fields = r
            .fields
            .iter()
            .map(|f| {
                let slot = reader_fields.iter().position(|n| *n == f.name);
                Some((slot.filter(|&i| i < MAX_FIELDS), compile(&f.schema)?))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Plan { fields })
    }

    /// The datum's reader slots, or None to defer to apache-avro (which first walks the
    /// datum within the same budget, `budget.rs`, so a datum refused here for holding more
    /// than `max_values` values is refused there too, with the limit named).
    pub fn read<'a>(&'a self, bytes: &'a [u8], max_values: u64) -> Option<Slots<'a>> {
        let mut c = Cursor {
            b: bytes,
            pos: 0,
            values: 0,
            max_values,
        };
        let mut slots: Slots<'a> = [None; MAX_FIELDS];
        for (slot, w) in &self.fields {
            match slot {
                Some(i) => slots[*i] = c.value(w)?,
                None => c.skip(w)?,
            }
        }
        (c.pos == bytes.len()).then_some(slots)
    }
}

fn compile(s: &Schema) -> Option<W> {
    Some(match s {
        Schema::Null => W::Null,
        Schema::Boolean => W::Boolean,
        Schema::Int => W::Int,
        Schema::Long => W::Long,
        Schema::TimestampMillis => W::TsMillis,
        Schema::Date | Schema::TimeMillis => W::OtherInt,
        Schema::TimeMicros
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => W::OtherLong,
        Schema::Float => W::Float,
        Schema::Double => W::Double,
        Schema::Bytes => W::Bytes,
        Schema::String => W::Str,
        Schema::Enum(e) => W::Enum(e.symbols.clone()),
        Schema::Fixed(f) => W::Fixed(f.size),
        Schema::Union(u) => W::Union(u.variants().iter().map(compile).collect::<Option<_>>()?),
        Schema::Array(a) => W::Array(Box::new(compile(&a.items)?)),
        Schema::Map(m) => W::Map(Box::new(compile(&m.types)?)),
        Schema::Record(r) => W::Record(
            r.fields
                .iter()
                .map(|f| compile(&f.schema))
                .collect::<Option<_>>()?,
        ),
        // Values apache-avro validates while decoding (uuid, decimal, ...) or named
        // references: always decoded by apache-avro.
        _ => return None,
    })
}

/// Placeholders for values of types no reader field accepts.
static OTHER_INT: &str = "<int logical type>";
static OTHER_LONG: &str = "<long logical type>";
static OTHER: &str = "<float, double, bytes, fixed, array, map or record>";

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    /// Values read or skipped so far, counted as `budget.rs` counts them.
    values: u64,
    max_values: u64,
}

impl<'a> Cursor<'a> {
    /// Zig-zag varint, bit for bit as apache-avro reads it (at most 10 bytes).
    #[inline]
    fn long(&mut self) -> Option<i64> {
        let mut z = 0u64;
        for j in 0..10 {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            z |= u64::from(byte & 0x7f) << (j * 7);
            if byte & 0x80 == 0 {
                return Some(if z & 1 == 0 {
                    (z >> 1) as i64
                } else {
                    !(z >> 1) as i64
                });
            }
        }
        None
    }

    #[inline]
    fn int(&mut self) -> Option<i32> {
        i32::try_from(self.long()?).ok()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.long()?).ok()?;
        self.take(n)
    }

    /// A value for a reader slot: Some(None) is null.
    fn value<'p: 'a>(&mut self, w: &'p W) -> Option<Option<Field<'a>>> {
        self.count()?;
        Some(Some(match w {
            W::Null => return Some(None),
            W::Boolean => match self.take(1)? {
                [0] => Field::Bool(false),
                [1] => Field::Bool(true),
                _ => return None,
            },
            W::Int => Field::Int(self.int()?),
            W::Long | W::TsMillis => Field::Long(self.long()?),
            W::Str => Field::Str(std::str::from_utf8(self.bytes()?).ok()?),
            W::Enum(symbols) => {
                let i = usize::try_from(self.int()?).ok()?;
                Field::Sym(symbols.get(i)?)
            }
            W::Union(variants) => {
                let i = usize::try_from(self.long()?).ok()?;
                return self.value(variants.get(i)?);
            }
            W::OtherInt => {
                self.int()?;
                Field::Other(&OTHER_INT)
            }
            W::OtherLong => {
                self.long()?;
                Field::Other(&OTHER_LONG)
            }
            other => {
                self.skip(other)?;
                Field::Other(&OTHER)
            }
        }))
    }

    #[inline]
    fn count(&mut self) -> Option<()> {
        self.values += 1;
        (self.values <= self.max_values).then_some(())
    }

    /// Steps over a value the reader does not want, checking it as apache-avro would.
    fn skip(&mut self, w: &W) -> Option<()> {
        self.count()?;
        match w {
            W::Null => {}
            W::Boolean => {
                if self.take(1)?[0] > 1 {
                    return None;
                }
            }
            W::Int | W::OtherInt => {
                self.int()?;
            }
            W::Long | W::TsMillis | W::OtherLong => {
                self.long()?;
            }
            W::Float => {
                self.take(4)?;
            }
            W::Double => {
                self.take(8)?;
            }
            W::Bytes => {
                self.bytes()?;
            }
            W::Str => {
                std::str::from_utf8(self.bytes()?).ok()?;
            }
            W::Enum(symbols) => {
                let i = usize::try_from(self.int()?).ok()?;
                symbols.get(i)?;
            }
            W::Fixed(n) => {
                self.take(*n)?;
            }
            W::Union(variants) => {
                let i = usize::try_from(self.long()?).ok()?;
                self.skip(variants.get(i)?)?;
            }
            W::Array(item) => self.blocks(|c| c.skip(item))?,
            W::Map(value) => self.blocks(|c| {
                c.skip(&W::Str)?;
                c.skip(value)
            })?,
            W::Record(fields) => {
                for f in fields {
                    self.skip(f)?;
                }
            }
        }
        Some(())
    }

    /// Array and map blocks: a count (negative: followed by a byte size), until count 0.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        loop {
            let n = self.long()?;
            if n == 0 {
                return Some(());
            }
            if n < 0 {
                self.long()?;
            }
            // Every admitted item takes a byte: a bigger claim is malformed (`budget.rs`).
            let count = n.unsigned_abs();
            if count > self.b.len().saturating_sub(self.pos) as u64 {
                return None;
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}
