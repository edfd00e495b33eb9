//! `mmblob export DIR`: write every value to a file under DIR named by its key.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use mmblob::{DataStore, EntryHandle};
use rayon::prelude::*;

use crate::cli::args::ExportArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::{output, progress, store};

/// Runs `export`. Keys that are not safe relative paths (absolute, with
/// `..`, `.` or empty components) are refused and values that fail their
/// checksum are skipped: both are listed, everything else is exported, and
/// the command fails at the end.
pub fn run(store_path: &Path, args: &ExportArgs) -> CliResult {
    let started = Instant::now();
    let db = store::open_read_only(store_path)?;
    let plan = Plan::new(&db, args);
    create_dirs(&args.dir, &plan.files)?;
    let total: u64 = plan.files.iter().map(|(_, e)| e.len() as u64).sum();
    let bar = progress::bytes(total, "export");
    let written = plan
        .files
        .par_iter()
        .try_for_each(|(path, entry)| write_file(path, entry, &bar));
    bar.finish_and_clear();
    written?;
    eprintln!(
        "exported {} files ({}) to {} in {} ({})",
        output::count(plan.files.len() as u64),
        output::bytes(total),
        args.dir.display(),
        output::duration(started.elapsed()),
        output::byte_rate(total, started.elapsed())
    );
    plan.report_left_out()
}

/// What export writes, and what it leaves out.
struct Plan {
    /// Target path and value of every file to write.
    files: Vec<(PathBuf, EntryHandle)>,
    /// Entries whose key is not a safe relative path.
    refused: Vec<EntryHandle>,
    /// Entries whose value fails its checksum.
    damaged: Vec<EntryHandle>,
}

impl Plan {
    /// Sorts the entries under `--prefix` into files, refused and damaged
    /// (checksums are checked in parallel).
    fn new(db: &DataStore, args: &ExportArgs) -> Self {
        let prefix = args.prefix.as_deref().map_or(&[][..], OsStr::as_bytes);
        let mut refused = Vec::new();
        let mut safe = Vec::new();
        for entry in db.iter_entries().filter(|e| e.key().starts_with(prefix)) {
            match relative_path(entry.key()) {
                Some(path) => safe.push((args.dir.join(path), entry)),
                None => refused.push(entry),
            }
        }
        let (files, damaged): (Vec<_>, Vec<_>) = safe
            .into_par_iter()
            .partition(|(_, entry)| entry.verify_checksum());
        Plan {
            files,
            refused,
            damaged: damaged.into_iter().map(|(_, entry)| entry).collect(),
        }
    }

    /// Lists the entries left out; fails when there are any (damage first).
    fn report_left_out(&self) -> CliResult {
        for entry in &self.refused {
            eprintln!(
                "refused key {}: not a safe relative path",
                output::key(entry.key())
            );
        }
        for entry in &self.damaged {
            eprintln!(
                "skipped key {}: its value fails its checksum",
                output::key(entry.key())
            );
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
        match self.refused.len() {
            0 => Ok(()),
            n => Err(CliError::new(
                Exit::Failure,
                format!(
                    "refused {n} key(s) that could write outside the export directory \
                     (absolute paths, `..`, `.` or empty components); fetch them with \
                     `mmblob get KEY -o FILE`"
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
fn write_file(path: &Path, entry: &EntryHandle, bar: &ProgressBar) -> CliResult {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(CliError::new(
            Exit::Failure,
            format!(
                "refusing to write through the symlink {}; remove it or export into an empty directory",
                path.display()
            ),
        ));
    }
    let write = || -> std::io::Result<()> {
        let mut file = BufWriter::new(File::create(path)?);
        super::get::copy_value(entry, &mut file, bar)?;
        file.flush()
    };
    write().map_err(|e| CliError::io("cannot write", path, &e))
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
