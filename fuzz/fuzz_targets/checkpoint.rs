//! Checkpoint bytes, as a corrupt or truncated row in `cx.checkpoints` would hold them: as
//! they are (the header check) and behind a valid header (the state decoder). Refused with a
//! message, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cx_pipeline_fuzz::checkpoint(data);
});
