//! Random operation sequences compared with a map. The checks live in
//! `tests/support/fuzz_checks.rs`, shared with the regression replay test.
#![no_main]

// Each target uses only its half of the shared checks.
#[allow(dead_code)]
#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_checks::random_operations(data);
});
