//! `mmblob salvage SRC DEST`: copy every entry that still checks into a new
//! store, and say what was left behind.

use std::path::Path;
use std::time::Instant;

use mmblob::{DataStore, Error, SalvageStats};
use serde::Serialize;

use crate::cli::args::SalvageArgs;
use crate::cli::commands::verify::{DamageJson, damage_json, keys_list};
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::progress;

/// `mmblob --json salvage`.
#[derive(Debug, Serialize)]
struct SalvageJson {
    source: String,
    dest: String,
    /// Nothing was left behind and the header was intact.
    complete: bool,
    entries_copied: u64,
    bytes_copied: u64,
    keys_deleted: u64,
    versions_superseded: u64,
    header_damaged: bool,
    seconds: f64,
    left_behind: Vec<DamageJson>,
    /// Keys not in the new store because their newest value is damaged.
    keys_lost: Vec<String>,
}

/// Runs `salvage`.
pub fn run(args: &SalvageArgs, json: bool) -> CliResult {
    let (src, dest) = (args.src.as_path(), args.dest.as_path());
    let started = Instant::now();
    let bar = progress::bytes(0, "salvage");
    let stats = DataStore::salvage_with_progress(src, dest, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let stats = stats.map_err(|e| salvage_error(src, dest, e))?;
    let elapsed = started.elapsed();
    let mut out = Out::new();
    if json {
        out.json(&SalvageJson {
            source: src.display().to_string(),
            dest: dest.display().to_string(),
            complete: stats.is_complete(),
            entries_copied: stats.entries_copied,
            bytes_copied: stats.bytes_copied,
            keys_deleted: stats.keys_deleted,
            versions_superseded: stats.versions_superseded,
            header_damaged: stats.header_damaged,
            seconds: elapsed.as_secs_f64(),
            left_behind: stats.left_behind.iter().map(damage_json).collect(),
            keys_lost: stats.keys_lost.iter().map(|k| output::key(k)).collect(),
        })?;
    } else {
        human(&mut out, src, dest, &stats, elapsed)?;
    }
    out.flush()
}

fn human(
    out: &mut Out,
    src: &Path,
    dest: &Path,
    stats: &SalvageStats,
    elapsed: std::time::Duration,
) -> CliResult {
    if stats.header_damaged {
        out.line(format!(
            "the header of {} is damaged; its store id was confirmed by entry checksums",
            src.display()
        ))?;
    }
    for damage in &stats.left_behind {
        out.line(format!("left behind: {damage}"))?;
    }
    if !stats.keys_lost.is_empty() {
        out.line(format!(
            "not copied (their newest value is damaged; an older value is not put in its place): {}",
            keys_list(stats.keys_lost.iter().map(Vec::as_slice))
        ))?;
    }
    out.line(format!(
        "copied {} entries ({}) from {} into the new store {} in {}; skipped {} deleted keys and \
         {} older versions",
        output::count(stats.entries_copied),
        output::bytes(stats.bytes_copied),
        src.display(),
        dest.display(),
        output::duration(elapsed),
        output::count(stats.keys_deleted),
        output::count(stats.versions_superseded),
    ))?;
    if stats.is_complete() {
        out.line("nothing was left behind")?;
    } else {
        out.line(format!(
            "check the new store with `mmblob --store {} verify`, then use it in place of {}",
            dest.display(),
            src.display()
        ))?;
    }
    Ok(())
}

fn salvage_error(src: &Path, dest: &Path, err: Error) -> CliError {
    match err {
        Error::SameStore { .. } => CliError::new(
            Exit::Usage,
            format!(
                "{} is the store being salvaged; salvage writes into a new store: choose a new path",
                dest.display()
            ),
        ),
        Error::NotAFile { path } if path == dest => CliError::new(
            Exit::Usage,
            format!(
                "{} is not a regular file; choose a new path for the salvaged store",
                dest.display()
            ),
        ),
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            CliError::new(
                Exit::Failure,
                format!(
                    "{} exists and is not empty; salvage writes only into a new store, so \
                     nothing was changed: choose a new path",
                    dest.display()
                ),
            )
        }
        Error::NotAStore { reason, .. } => CliError::new(
            Exit::NotAStore,
            format!("{}: nothing to salvage: {reason}", src.display()),
        ),
        other => CliError::store(src, other),
    }
}
