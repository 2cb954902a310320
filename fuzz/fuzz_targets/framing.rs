//! Raw payloads through the Confluent framing and both wire formats: any bytes get an
//! event or a reason, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cx_pipeline_fuzz::framing(data);
});
