//! `mmblob backup DEST`: an online, consistent, incremental copy.

use std::path::Path;
use std::time::Instant;

use mmblob::Error;
use serde::Serialize;

use crate::cli::args::BackupArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::{progress, store};

/// `mmblob --json backup DEST`.
#[derive(Debug, Serialize)]
struct BackupJson {
    destination: String,
    /// First byte offset copied.
    from: u64,
    /// End of the bytes copied: the store's committed end when the backup began.
    to: u64,
    bytes_copied: u64,
    incremental: bool,
    entries: u64,
    store_id: String,
    seconds: f64,
}

/// Runs `backup`. The store is opened read-only, so a process writing to it
/// goes on meanwhile; the copy holds everything committed when it began.
pub fn run(store_path: &Path, args: &BackupArgs, json: bool) -> CliResult {
    let db = store::open_read_only(store_path)?;
    let total = db.stats().file_size;
    let started = Instant::now();
    let bar = progress::bytes(total, "backup");
    let stats = db.backup_with_progress(&args.dest, |n| bar.inc(n));
    bar.finish_and_clear();
    let stats = stats.map_err(|e| destination_error(store_path, &args.dest, e))?;
    let report = BackupJson {
        destination: args.dest.display().to_string(),
        from: stats.from,
        to: stats.to,
        bytes_copied: stats.bytes_copied(),
        incremental: stats.incremental,
        entries: stats.entries,
        store_id: format!("{:016x}", stats.store_id),
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut out = Out::new();
    if json {
        out.json(&report)?;
    } else {
        out.line(format!(
            "{} backup to {}: copied bytes {}..{} ({}, {} entries) in {}",
            if stats.incremental {
                "incremental"
            } else {
                "full"
            },
            args.dest.display(),
            stats.from,
            stats.to,
            output::bytes(stats.bytes_copied()),
            output::count(stats.entries),
            output::duration(started.elapsed()),
        ))?;
    }
    out.flush()
}

/// Errors about the destination name the destination; the rest the store.
fn destination_error(store_path: &Path, dest: &Path, err: Error) -> CliError {
    let hint = "it was left unchanged; choose another destination";
    match err {
        Error::NotAStore { .. } | Error::NotAFile { .. } => CliError::new(
            Exit::NotAStore,
            format!(
                "{} is not an mmblob backup of this store; {hint}",
                dest.display()
            ),
        ),
        Error::DestinationInUse { .. } | Error::SameStore { .. } => {
            CliError::new(Exit::Failure, format!("{err}; choose another destination"))
        }
        Error::Locked { .. } => CliError::new(
            Exit::Locked,
            format!(
                "{} is open for writing by another process; close it first",
                dest.display()
            ),
        ),
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            CliError::new(Exit::PermissionDenied, format!("{err}"))
        }
        other => CliError::store(store_path, other),
    }
}
