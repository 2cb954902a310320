//! The fuzz targets' bodies, kept in a library so each target stays a one-liner and the
//! rules (what must agree, what must never be printed) are written once.

use arbitrary::{Arbitrary, Unstructured};
use cx_pipeline::codec::{
    frame_confluent, Budget, Decoder, Fetch, SchemaSource, Schemas, WireFormat,
};
use cx_pipeline::config::Config;
use cx_pipeline::delivery::format::{self, SourceIdentity};
use cx_pipeline::model::Stream;
use cx_pipeline::pipeline::Settings;
use std::collections::HashMap;
use std::sync::OnceLock;

/// libfuzzer-sys aborts from its panic hook; the decoder catches apache-avro's panics on
/// purpose (a refused schema), so only a panic that escapes a target may end the run, and
/// libfuzzer-sys's own catch around the target still aborts on that.
fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}"))));
}

fn schemas() -> &'static Schemas {
    quiet_caught_panics();
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| Schemas::embedded().unwrap_or_else(|e| panic!("{e}")))
}

/// **Stub** schema source: a fixed map of ids (the registry's own faults are the
/// integration tests' business).
struct Ids(HashMap<u32, String>);

impl SchemaSource for Ids {
    fn fetch(&self, id: u32) -> Result<Option<String>, Fetch> {
        Ok(self.0.get(&id).cloned())
    }
}

/// A writer schema and a datum written, supposedly, with it.
#[derive(Debug)]
pub struct Case {
    pub schema: String,
    pub datum: Vec<u8>,
}

/// A writer type, as a producer could register it.
#[derive(Arbitrary, Debug)]
enum Ty {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Enum(u8),
    Fixed(u8),
    Array(Box<Ty>),
    Map(Box<Ty>),
    Union(Vec<Ty>),
    Record(Vec<Ty>),
    /// A named type defined before (or being defined: recursion).
    Ref(u8),
    Date,
    TimestampMillis,
    Uuid,
    Decimal(u8),
}

fn to_json(t: &Ty, names: &mut Vec<String>, depth: usize) -> serde_json::Value {
    use serde_json::json;
    if depth > 40 {
        return json!("long");
    }
    let name = |names: &mut Vec<String>| {
        let n = format!("N{}", names.len());
        names.push(n.clone());
        n
    };
    match t {
        Ty::Null => json!("null"),
        Ty::Boolean => json!("boolean"),
        Ty::Int => json!("int"),
        Ty::Long => json!("long"),
        Ty::Float => json!("float"),
        Ty::Double => json!("double"),
        Ty::Bytes => json!("bytes"),
        Ty::Str => json!("string"),
        Ty::Enum(n) => {
            let symbols: Vec<String> = (0..=(n % 5)).map(|i| format!("S{i}")).collect();
            json!({"type": "enum", "name": name(names), "symbols": symbols})
        }
        Ty::Fixed(n) => json!({"type": "fixed", "name": name(names), "size": n % 17}),
        Ty::Array(i) => json!({"type": "array", "items": to_json(i, names, depth + 1)}),
        Ty::Map(v) => json!({"type": "map", "values": to_json(v, names, depth + 1)}),
        Ty::Union(vs) => serde_json::Value::Array(
            vs.iter()
                .take(5)
                .map(|v| to_json(v, names, depth + 1))
                .collect(),
        ),
        Ty::Record(fs) => {
            let n = name(names);
            let fields: Vec<_> = fs
                .iter()
                .take(8)
                .enumerate()
                .map(
                    |(i, f)| json!({"name": format!("f{i}"), "type": to_json(f, names, depth + 1)}),
                )
                .collect();
            json!({"type": "record", "name": n, "fields": fields})
        }
        Ty::Ref(i) if !names.is_empty() => json!(names[*i as usize % names.len()].clone()),
        Ty::Ref(_) => json!("long"),
        Ty::Date => json!({"type": "int", "logicalType": "date"}),
        Ty::TimestampMillis => json!({"type": "long", "logicalType": "timestamp-millis"}),
        Ty::Uuid => json!({"type": "string", "logicalType": "uuid"}),
        Ty::Decimal(p) => json!({"type": "bytes", "logicalType": "decimal",
            "precision": p % 30 + 1, "scale": 0}),
    }
}

/// The survey contract with `lead` as an added first field.
pub fn leading(lead: serde_json::Value) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&schemas().survey_json).unwrap_or_else(|e| panic!("{e}"));
    if let Some(f) = v["fields"].as_array_mut() {
        f.insert(0, serde_json::json!({"name": "lead", "type": lead}));
    }
    v.to_string()
}

impl Case {
    /// Odd first byte: `len:u16 | schema json | datum`. Even: a structured writer type and
    /// the datum's bytes.
    pub fn from_bytes(data: &[u8]) -> Option<Case> {
        let (&mode, rest) = data.split_first()?;
        if mode & 1 == 1 {
            let n = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
            let schema = std::str::from_utf8(rest.get(2..2 + n)?).ok()?.to_string();
            return Some(Case {
                schema,
                datum: rest.get(2 + n..)?.to_vec(),
            });
        }
        let mut u = Unstructured::new(rest);
        let ty = Ty::arbitrary(&mut u).ok()?;
        let datum = u.take_rest().to_vec();
        Some(Case {
            schema: leading(to_json(&ty, &mut Vec::new(), 0)),
            datum,
        })
    }
}

/// A small value budget, so fuzzed datums reach it.
pub const FUZZ_BUDGET: Budget = Budget {
    max_message_bytes: 1 << 20,
    max_values: 2_000,
};

/// The schema resolved as the job would (guard, compatibility), then the datum through the
/// fast path (with its fallback) and through the reference alone: the same event or the
/// same error.
pub fn decode_case(case: &Case) {
    let ids = Ids(HashMap::from([(1, case.schema.clone())]));
    let mut d = Decoder::new(
        WireFormat::Confluent,
        schemas().clone(),
        Some(Box::new(ids)),
    )
    .budget(FUZZ_BUDGET);
    let Ok(w) = d.writer(Stream::Survey, 1) else {
        return;
    };
    let fast = w
        .decode(Stream::Survey, &case.datum)
        .map_err(|e| e.to_string());
    let reference = w
        .decode_reference(Stream::Survey, &case.datum)
        .map_err(|e| e.to_string());
    assert_eq!(fast, reference, "fast path and reference disagree");
    let _ = d.decode(Stream::Survey, &frame_confluent(1, &case.datum));
}

/// Any payload, either wire format, either stream.
pub fn framing(data: &[u8]) {
    let ids = Ids(HashMap::from([
        (1, schemas().survey_json.clone()),
        (2, schemas().interaction_json.clone()),
        (
            3,
            leading(serde_json::json!({"type": "array", "items": "long"})),
        ),
    ]));
    let mut c = Decoder::new(
        WireFormat::Confluent,
        schemas().clone(),
        Some(Box::new(ids)),
    )
    .budget(FUZZ_BUDGET);
    let mut a = Decoder::new(WireFormat::Avro, schemas().clone(), None).budget(FUZZ_BUDGET);
    for s in [Stream::Survey, Stream::Interaction] {
        let _ = c.decode(s, data);
        let _ = a.decode(s, data);
    }
}

fn checkpoint_ctx() -> &'static (Settings, SourceIdentity, Vec<u8>) {
    static C: OnceLock<(Settings, SourceIdentity, Vec<u8>)> = OnceLock::new();
    C.get_or_init(|| {
        let v = Config::default()
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        let src = SourceIdentity::default();
        let header = format::header(&v.settings, &src).unwrap_or_else(|e| panic!("{e}"));
        (v.settings, src, header)
    })
}

/// Checkpoint bytes as they are, and behind a valid header.
pub fn checkpoint(data: &[u8]) {
    let (st, src, header) = checkpoint_ctx();
    let _ = format::decode(data, st, src);
    let _ = format::decode_row(data, st, src);
    let mut framed = header.clone();
    framed.extend_from_slice(data);
    let _ = format::decode(&framed, st, src);
    let _ = format::decode_row(&framed, st, src);
}

/// A value planted as a password: long enough, with a digit and a letter, no spaces, and
/// nowhere else in the text, so seeing it in a message can only mean it leaked.
fn planted(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("password"))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|v| {
            v.len() >= 6
                && v.chars().all(|c| c.is_ascii_alphanumeric())
                && v.chars().any(|c| c.is_ascii_digit())
                && v.chars().any(|c| c.is_ascii_alphabetic())
                && text.matches(*v).count() == 1
        })
        .collect()
}

/// Config text: parse, then validate; no message may carry a planted password.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let secrets = planted(&text);
    let message = match Config::parse(std::path::Path::new("fuzz.toml"), &text) {
        Err(e) => e.to_string(),
        Ok(c) => match c.validate() {
            Err(e) => e.to_string(),
            Ok(v) => format!("{v:?}"),
        },
    };
    for s in secrets {
        assert!(!message.contains(s), "a planted password reached a message");
    }
}
