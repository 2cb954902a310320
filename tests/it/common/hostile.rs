//! The hostile writer schemas and datum pieces of issue 19, built one way for the
//! real-services test (`hostile.rs`) and the fuzz seed corpus (`fuzz_seeds.rs`), so the
//! seeds are the messages the test proves are dead-lettered.

use cx_pipeline::codec::Schemas;
use serde_json::{json, Value};

/// Avro's zigzag varint of `n`: a length, a block count or a long.
pub fn zigzag(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// The survey contract with a leading field of `ty`, as a producer may register it.
pub fn leading(schemas: &Schemas, ty: Value) -> String {
    let mut v: Value = serde_json::from_str(&schemas.survey_json).unwrap_or_else(|e| panic!("{e}"));
    v["fields"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("fields"))
        .insert(0, json!({"name": "lead", "type": ty}));
    v.to_string()
}

/// An array of zero-width items: any block count reads no bytes.
pub fn nulls() -> Value {
    json!({"type": "array", "items": "null"})
}

/// A recursive record: nesting as deep as the datum says.
pub fn recursive() -> Value {
    json!(["null", {"type": "record", "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"]}]}])
}

pub fn longs() -> Value {
    json!({"type": "array", "items": "long"})
}

/// 25 levels of records each holding the previous one twice (once by name): 2^25 values
/// in a datum of no bytes at all.
pub fn fanout() -> Value {
    let mut fanout = json!({"type": "record", "name": "A0",
        "fields": [{"name": "n", "type": "null"}]});
    for i in 1..=25 {
        fanout = json!({"type": "record", "name": format!("A{i}"), "fields": [
            {"name": "a", "type": fanout}, {"name": "b", "type": format!("A{}", i - 1)}]});
    }
    fanout
}
