//! Writer schemas that no datum could be read with in bounded work, refused once per schema
//! when it is resolved (the message is dead-lettered as `incompatible_schema`, the `error`
//! header naming the rule), never discovered per message by a crash or a stall:
//!
//! - a named type that contains itself: a datum can nest as deep as its bytes allow, and
//!   both decoders recurse per level (400,000 levels overflowed the stack);
//! - an array of zero-width items (null, a record of nulls, `fixed(0)`): a block can claim
//!   millions of items in a few bytes, and apache-avro materialises each one (16,000,000
//!   per block aborted the process);
//! - nesting deeper than [`MAX_SCHEMA_DEPTH`], counted through named references.
//!
//! Everything else costs at least one byte per item or level, so its work is bounded by the
//! payload's size. The walk is linear in the schema's size: a reused named type is checked
//! where it is defined and its zero-width verdict remembered.

use apache_avro::schema::Name;
use apache_avro::Schema;
use std::collections::HashMap;

/// Deeper than any real event schema (the contracts here are 3 levels deep).
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// Why a writer schema is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unbounded {
    #[error("type {0} contains itself, so a datum could nest without limit")]
    Recursive(String),
    #[error("an array of zero-width items ({0}) could claim any number of items in a few bytes")]
    ZeroWidthItems(String),
    #[error("the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")]
    TooDeep,
}

/// Checks that every datum of `schema` costs work bounded by its size.
pub fn check(schema: &Schema) -> Result<(), Unbounded> {
    Walk::default().walk(schema, 0).map(|_| ())
}

#[derive(Default)]
struct Walk<'a> {
    /// Named types defined so far, with their zero-width verdict once known.
    defs: HashMap<String, (&'a Schema, Option<bool>)>,
    /// Named types being defined (the current path): a reference to one is recursion.
    open: Vec<String>,
    /// The nesting height of each record defined so far.
    heights: HashMap<String, usize>,
}

fn fullname(n: &Name) -> String {
    n.fullname(None)
}

impl<'a> Walk<'a> {
    /// The nesting a datum of `s` can reach, counted through named references (a type
    /// defined shallow and referred to from deep inside another nests as deep as both).
    fn walk(&mut self, s: &'a Schema, depth: usize) -> Result<usize, Unbounded> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(Unbounded::TooDeep);
        }
        let height = match s {
            Schema::Record(r) => {
                let n = fullname(&r.name);
                self.defs.insert(n.clone(), (s, None));
                self.open.push(n.clone());
                let mut h = 0;
                for f in &r.fields {
                    h = h.max(self.walk(&f.schema, depth + 1)?);
                }
                self.open.pop();
                self.heights.insert(n, h + 1);
                h + 1
            }
            Schema::Enum(e) => {
                self.defs.insert(fullname(&e.name), (s, None));
                0
            }
            Schema::Fixed(f) => {
                self.defs.insert(fullname(&f.name), (s, None));
                0
            }
            Schema::Decimal(d) => self.walk(&d.inner, depth + 1)?,
            Schema::Array(a) => {
                let h = self.walk(&a.items, depth + 1)? + 1;
                if self.zero_width(&a.items) {
                    return Err(Unbounded::ZeroWidthItems(describe(&a.items)));
                }
                h
            }
            Schema::Map(m) => self.walk(&m.types, depth + 1)? + 1,
            Schema::Union(u) => {
                let mut h = 0;
                for v in u.variants() {
                    h = h.max(self.walk(v, depth + 1)?);
                }
                h + 1
            }
            Schema::Ref { name } => {
                let n = fullname(name);
                if self.open.contains(&n) {
                    return Err(Unbounded::Recursive(n));
                }
                self.heights.get(&n).copied().unwrap_or(0)
            }
            _ => 0,
        };
        // Checked at every node, so the zero-width test below never recurses deeper.
        if height > MAX_SCHEMA_DEPTH {
            return Err(Unbounded::TooDeep);
        }
        Ok(height)
    }

    /// Whether a value of `s` can take no bytes at all. Map entries (a key) and union
    /// values (a branch index) always take one.
    fn zero_width(&mut self, s: &'a Schema) -> bool {
        match s {
            Schema::Null => true,
            Schema::Fixed(f) => f.size == 0,
            Schema::Decimal(d) => self.zero_width(&d.inner),
            Schema::Record(r) => {
                let n = fullname(&r.name);
                if let Some((_, Some(known))) = self.defs.get(&n) {
                    return *known;
                }
                let zw = r.fields.iter().all(|f| self.zero_width(&f.schema));
                self.defs.insert(n, (s, Some(zw)));
                zw
            }
            Schema::Ref { name } => {
                let n = fullname(name);
                match self.defs.get(&n).copied() {
                    Some((_, Some(known))) => known,
                    // Not recursive (checked before): the definition is complete.
                    Some((def, None)) if !self.open.contains(&n) => self.zero_width(def),
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

fn describe(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Record(r) => format!("record {}", fullname(&r.name)),
        Schema::Fixed(f) => format!("fixed {} of size 0", fullname(&f.name)),
        Schema::Ref { name } => fullname(name),
        _ => "zero-width".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Schema {
        Schema::parse_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)
    }

    #[test]
    fn the_contracts_and_ordinary_evolutions_pass() {
        let s = super::super::Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&s.survey), Ok(()));
        assert_eq!(check(&s.interaction), Ok(()));
        // A named type used twice is reuse, not recursion; arrays of real items are fine.
        let reuse = record(
            r#"{"name":"a","type":{"type":"enum","name":"E","symbols":["X"]}},
               {"name":"b","type":"E"},
               {"name":"c","type":{"type":"array","items":"long"}},
               {"name":"d","type":{"type":"map","values":"null"}},
               {"name":"e","type":{"type":"array","items":["null","string"]}}"#,
        );
        assert_eq!(check(&parse(&reuse)), Ok(()));
    }

    #[test]
    fn zero_width_items_are_refused_however_they_are_spelled() {
        for items in [
            r#""null""#,
            r#"{"type":"record","name":"Empty","fields":[]}"#,
            r#"{"type":"record","name":"Nulls","fields":[{"name":"x","type":"null"}]}"#,
            r#"{"type":"fixed","name":"F0","size":0}"#,
        ] {
            let s = parse(&record(&format!(
                r#"{{"name":"xs","type":{{"type":"array","items":{items}}}}}"#
            )));
            assert!(
                matches!(check(&s), Err(Unbounded::ZeroWidthItems(_))),
                "{items}"
            );
        }
        // The same zero-width record defined once and referred to by name.
        let by_ref = record(
            r#"{"name":"n","type":{"type":"record","name":"N","fields":[]}},
               {"name":"xs","type":{"type":"array","items":"N"}}"#,
        );
        assert!(matches!(
            check(&parse(&by_ref)),
            Err(Unbounded::ZeroWidthItems(_))
        ));
    }

    #[test]
    fn recursion_and_excessive_depth_are_refused() {
        let linked = r#"{"type":"record","name":"Node","fields":[
            {"name":"next","type":["null","Node"]}]}"#;
        assert_eq!(
            check(&parse(linked)),
            Err(Unbounded::Recursive("Node".into()))
        );
        let mut deep = r#""long""#.to_string();
        for _ in 0..(MAX_SCHEMA_DEPTH + 1) {
            deep = format!(r#"{{"type":"array","items":{deep}}}"#);
        }
        assert_eq!(
            check(&parse(&record(&format!(r#"{{"name":"d","type":{deep}}}"#)))),
            Err(Unbounded::TooDeep)
        );
        // The same depth built from sibling definitions, each holding the one before by
        // name: every definition is shallow, a datum of the last is not.
        let mut fields = vec![r#"{"name":"f0","type":{"type":"record","name":"A0","fields":[{"name":"x","type":"long"}]}}"#.to_string()];
        for i in 1..=(MAX_SCHEMA_DEPTH + 1) {
            fields.push(format!(
                r#"{{"name":"f{i}","type":{{"type":"record","name":"A{i}","fields":[{{"name":"x","type":"A{}"}}]}}}}"#,
                i - 1
            ));
        }
        assert_eq!(
            check(&parse(&record(&fields.join(",")))),
            Err(Unbounded::TooDeep)
        );
        // A short chain of the same shape is fine.
        assert_eq!(check(&parse(&record(&fields[..4].join(",")))), Ok(()));
    }
}
