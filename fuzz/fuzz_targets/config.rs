//! Config text through parsing and validation: an error names the place, never panics, and
//! never quotes a password value planted in the text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cx_pipeline_fuzz::config(data);
});
