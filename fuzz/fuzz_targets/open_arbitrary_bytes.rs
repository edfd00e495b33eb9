//! Opens arbitrary bytes (and damaged stores) as a store: never a panic,
//! never a change to a file it rejects. The checks live in
//! `tests/support/fuzz_checks.rs`, shared with the regression replay test.
#![no_main]

// Each target uses only its half of the shared checks.
#[allow(dead_code)]
#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_checks::open_arbitrary_bytes(data);
});
