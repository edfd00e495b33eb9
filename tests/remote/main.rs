//! Stores shipped to and followed from object storage, end to end.
//!
//! `cli` runs everywhere against a `file://` remote. `garage` runs against
//! a real 3-node Garage cluster on loopback: its tests are ignored unless
//! `tests/remote/run.sh` started the cluster and runs them with
//! `--ignored` (it sets `MMBLOB_GARAGE=1` and the `AWS_*` variables).

mod cli;
mod common;
mod garage;
