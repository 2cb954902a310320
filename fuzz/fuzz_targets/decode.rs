//! (writer schema, datum) pairs through `Decoder::decode`, as a producer with the right to
//! register schemas could send them. The writer schema is the survey contract with one
//! leading field: built from the input's structure (even first byte) or given as JSON
//! (odd first byte, `len:u16 | json | datum`, the form of the seed corpus). The fast path
//! and the reference must agree, and neither may panic, abort or exceed the budget.

#![no_main]

use cx_pipeline_fuzz::{decode_case, Case};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(case) = Case::from_bytes(data) {
        decode_case(&case);
    }
});
