//! `mmblob export DIR`: write every value to a file under DIR named by its key.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use mmblob::EntryHandle;
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::args::ExportArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::own_files::OwnFiles;
use crate::cli::{atomic, progress, store};

/// `mmblob --json export`.
#[derive(Debug, Serialize)]
struct ExportJson {
    /// The directory written into.
    dir: String,
    /// Files written.
    exported: u64,
    /// Bytes written.
    bytes: u64,
    /// Keys left out, each with the reason.
    skipped: Vec<Skipped>,
    seconds: f64,
}

/// A key export left out.
#[derive(Debug, Serialize)]
struct Skipped {
    /// The key as `ls` shows it.
    key: String,
    /// `unsafe_path`, `store_file` or `damaged`.
    reason: &'static str,
    /// In words.
    detail: String,
}

/// Runs `export`. Keys that are not safe relative paths (absolute, with
/// `..`, `.` or empty components) or whose file would be the store itself
/// or its index sidecar are refused, and values that fail their checksum
/// are skipped: all are listed, everything else is exported, and the
/// command fails at the end. Each file is written through a temporary file
/// renamed into place.
pub fn run(store_path: &Path, args: &ExportArgs, json: bool) -> CliResult {
    let started = Instant::now();
    let db = store::open_read_only(store_path)?;
    let space = crate::cli::space::Space::new(&db, args.keys.ns.as_deref())?;
    let plan = Plan::new(&space, args, &OwnFiles::of(store_path));
    create_dirs(&args.dir, &plan.files)?;
    let total: u64 = plan.files.iter().map(|(_, e)| e.len() as u64).sum();
    let bar = progress::bytes(total, "export");
    let written = plan
        .files
        .par_iter()
        .try_for_each(|(path, entry)| write_file(path, entry, &bar));
    bar.finish_and_clear();
    written?;
    if json {
        let mut out = Out::new();
        out.json(&ExportJson {
            dir: args.dir.display().to_string(),
            exported: plan.files.len() as u64,
            bytes: total,
            skipped: plan.skipped(),
            seconds: started.elapsed().as_secs_f64(),
        })?;
        out.flush()?;
    } else {
        eprintln!(
            "exported {} files ({}) to {} in {} ({}){}",
            output::count(plan.files.len() as u64),
            output::bytes(total),
            args.dir.display(),
            output::duration(started.elapsed()),
            output::byte_rate(total, started.elapsed()),
            match plan.skipped().len() {
                0 => String::new(),
                n => format!("; skipped {n} key(s), listed below"),
            }
        );
    }
    plan.report_left_out()
}

/// What export writes, and what it leaves out.
struct Plan {
    /// Target path and value of every file to write.
    files: Vec<(PathBuf, EntryHandle)>,
    /// Entries whose key is not a safe relative path.
    refused: Vec<EntryHandle>,
    /// Entries whose file would be one of the store's own files, and which.
    own: Vec<(EntryHandle, PathBuf, &'static str)>,
    /// Entries whose value fails its checksum.
    damaged: Vec<EntryHandle>,
}

impl Plan {
    /// Sorts the entries under `--prefix` into files, refused and damaged
    /// (checksums are checked in parallel).
    fn new(space: &crate::cli::space::Space<'_>, args: &ExportArgs, own_files: &OwnFiles) -> Self {
        let prefix = args
            .prefix
            .as_deref()
            .map_or_else(Vec::new, |p| store::key_arg(p, args.keys.raw_keys));
        let mut refused = Vec::new();
        let mut own = Vec::new();
        let mut safe = Vec::new();
        for entry in space.entries_with_prefix(&prefix) {
            match relative_path(space.key_of(entry.key())) {
                Some(path) => {
                    let path = args.dir.join(path);
                    match own_files.which_path(&path) {
                        Some(what) => own.push((entry, path, what)),
                        None => safe.push((path, entry)),
                    }
                }
                None => refused.push(entry),
            }
        }
        let (files, damaged): (Vec<_>, Vec<_>) = safe
            .into_par_iter()
            .partition(|(_, entry)| entry.verify_checksum());
        Plan {
            files,
            refused,
            own,
            damaged: damaged.into_iter().map(|(_, entry)| entry).collect(),
        }
    }

    /// Every key left out, with the reason.
    fn skipped(&self) -> Vec<Skipped> {
        let refused = self.refused.iter().map(|e| Skipped {
            key: output::key(e.key()),
            reason: "unsafe_path",
            detail: "not a safe relative path".into(),
        });
        let own = self.own.iter().map(|(e, path, what)| Skipped {
            key: output::key(e.key()),
            reason: "store_file",
            detail: format!(
                "its file {} is {what}, which export never writes over",
                path.display()
            ),
        });
        let damaged = self.damaged.iter().map(|e| Skipped {
            key: output::key(e.key()),
            reason: "damaged",
            detail: "its value fails its checksum".into(),
        });
        refused.chain(own).chain(damaged).collect()
    }

    /// Lists the entries left out; fails when there are any (damage first).
    fn report_left_out(&self) -> CliResult {
        for skipped in self.skipped() {
            let verb = if skipped.reason == "damaged" {
                "skipped"
            } else {
                "refused"
            };
            eprintln!("{verb} key {}: {}", skipped.key, skipped.detail);
        }
        if !self.damaged.is_empty() {
            return Err(CliError::new(
                Exit::Damage,
                format!(
                    "skipped {} damaged value(s); `mmblob verify` tells more, and \
                     `mmblob get --no-verify KEY -o FILE` salvages the bytes as they are",
                    self.damaged.len()
                ),
            ));
        }
        let mut reasons = Vec::new();
        if !self.refused.is_empty() {
            reasons.push(format!(
                "{} that could write outside the export directory (absolute paths, `..`, `.` \
                 or empty components)",
                self.refused.len()
            ));
        }
        if !self.own.is_empty() {
            reasons.push(format!(
                "{} whose file would be the store itself or its index sidecar (export into \
                 another directory)",
                self.own.len()
            ));
        }
        match reasons.is_empty() {
            true => Ok(()),
            false => Err(CliError::new(
                Exit::Failure,
                format!(
                    "refused {} key(s): {}; fetch them with `mmblob get KEY -o FILE`",
                    self.refused.len() + self.own.len(),
                    reasons.join("; ")
                ),
            )),
        }
    }
}

/// The relative path a key names, or `None` if it could point outside the
/// export directory or is not a plain path.
fn relative_path(key: &[u8]) -> Option<PathBuf> {
    if key.starts_with(b"/") || key.contains(&0) {
        return None;
    }
    let mut path = PathBuf::new();
    for part in key.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." || part == b".." {
            return None;
        }
        path.push(OsStr::from_bytes(part));
    }
    Some(path)
}

/// Creates the directories the files go into, refusing to follow a symlink
/// (which could lead outside `root`).
fn create_dirs(root: &Path, files: &[(PathBuf, EntryHandle)]) -> CliResult {
    fs::create_dir_all(root).map_err(|e| CliError::io("cannot create directory", root, &e))?;
    let dirs: BTreeSet<&Path> = files
        .iter()
        .flat_map(|(path, _)| path.ancestors().skip(1))
        .filter(|dir| dir.starts_with(root) && *dir != root)
        .collect();
    for dir in dirs {
        match fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_a_directory(dir)),
            Err(_) => {
                fs::create_dir(dir).map_err(|e| CliError::io("cannot create directory", dir, &e))?
            }
        }
    }
    Ok(())
}

fn not_a_directory(path: &Path) -> CliError {
    CliError::new(
        Exit::Failure,
        format!(
            "cannot export into {}: it exists and is not a directory (symlinks are not followed); \
             export into an empty directory",
            path.display()
        ),
    )
}

/// Writes one value to `path`, streamed from the map, never through a symlink.
/// Replaces only regular files: not a directory, a FIFO (which would block)
/// or a device.
fn write_file(path: &Path, entry: &EntryHandle, bar: &ProgressBar) -> CliResult {
    let refuse = |what: &str| {
        Err(CliError::new(
            Exit::Failure,
            format!(
                "refusing to write through {what} {}; remove it or export into an empty directory",
                path.display()
            ),
        ))
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return refuse("the symlink"),
        Ok(meta) if !meta.is_file() => return refuse("the non-regular file"),
        _ => {}
    }
    atomic::write_file(path, |out| super::get::copy_value(entry, out, bar))
        .map_err(|e| CliError::io("cannot write", path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_are_safe() {
        assert_eq!(relative_path(b"a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(relative_path(b"file"), Some(PathBuf::from("file")));
    }

    #[test]
    fn escaping_keys_are_refused() {
        for key in [
            &b"../x"[..],
            b"/etc/passwd",
            b"a/../../b",
            b"a//b",
            b"./a",
            b"a/",
            b"a\0b",
        ] {
            assert_eq!(relative_path(key), None, "{key:?}");
        }
    }
}
