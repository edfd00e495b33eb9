//! Helpers shared by the integration tests: a seeded random number
//! generator, child processes that re-run one test of the current binary,
//! and the checks that the fuzz targets and their regression replay share.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod child;
pub mod files;
pub mod fuzz_checks;
pub mod limits;
pub mod memory;
pub mod rng;
pub mod strace;
