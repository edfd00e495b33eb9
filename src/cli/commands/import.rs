//! `mmblob import DIR`: store every file under DIR, keyed by its relative path.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::ProgressBar;
use mmblob::{DataStore, EntryHandle};
use rayon::prelude::*;
use serde::Serialize;

use super::put::Source;
use crate::cli::args::ImportArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::own_files::OwnFiles;
use crate::cli::{progress, store};

/// Files at least this large are streamed one by one; smaller ones are read
/// in parallel and written in atomic batches.
const STREAM_THRESHOLD: u64 = 4 << 20;
/// Most bytes of small files held in memory for one batch.
const BATCH_BYTES: u64 = 64 << 20;
/// Most files in one batch.
const BATCH_FILES: usize = 4096;
/// Piece of a large file compared at a time with the stored value.
const COMPARE_CHUNK: usize = 1 << 20;

/// A file found under the imported directory.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    /// Path relative to the directory: the key.
    key: Vec<u8>,
    len: u64,
}

/// A file or directory that could not be read.
#[derive(Debug, Serialize)]
struct Failed {
    path: String,
    error: String,
}

/// `mmblob --json import`.
#[derive(Debug, Serialize)]
struct ImportJson {
    /// The directory imported.
    dir: String,
    /// Files written to the store.
    imported: u64,
    /// Bytes written to the store.
    bytes: u64,
    /// Files whose bytes were already stored under their key, not written again.
    unchanged: u64,
    /// Entries that are not regular files (symlinks, sockets, the store itself).
    not_regular: u64,
    /// Files and directories that could not be read (with `--skip-errors`).
    failed: Vec<Failed>,
    /// Whether the store was synced before reporting (not with `--no-sync`).
    synced: bool,
    seconds: f64,
}

/// What the import did so far.
#[derive(Debug, Default)]
struct Tally {
    imported: u64,
    bytes: u64,
    unchanged: u64,
    failed: Vec<Failed>,
}

/// How the import goes on after a file that cannot be read.
struct Errors {
    /// `--skip-errors`: record and go on, rather than stop.
    skip: bool,
    failed: Mutex<Vec<Failed>>,
}

impl Errors {
    /// Records the failure to read `path` and returns `Ok` with `--skip-errors`;
    /// else the error that stops the import.
    fn handle(&self, path: &Path, err: &io::Error) -> CliResult {
        if !self.skip {
            let exit = match err.kind() {
                io::ErrorKind::PermissionDenied => Exit::PermissionDenied,
                _ => Exit::Failure,
            };
            return Err(CliError::new(
                exit,
                format!(
                    "cannot read {}: {err}; the files imported before it are stored: fix it \
                     and run the same import again (unchanged files are skipped), or pass \
                     --skip-errors to go on past it",
                    path.display()
                ),
            ));
        }
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Failed {
                path: path.display().to_string(),
                error: err.to_string(),
            });
        Ok(())
    }

    fn into_failed(self) -> Vec<Failed> {
        let mut failed = self
            .failed
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failed.sort_by(|a, b| a.path.cmp(&b.path));
        failed
    }
}

/// Runs `import`.
pub fn run(store_path: &Path, args: &ImportArgs, json: bool) -> CliResult {
    let started = Instant::now();
    let errors = Errors {
        skip: args.skip_errors,
        failed: Mutex::new(Vec::new()),
    };
    let (files, not_regular) = collect(&args.dir, store_path, &errors)?;
    let db = store::open_writable(store_path, true)?;
    let total: u64 = files.iter().map(|f| f.len).sum();
    let bar = progress::bytes(total, "import");
    let (small, large): (Vec<&Found>, Vec<&Found>) =
        files.iter().partition(|f| f.len < STREAM_THRESHOLD);
    let mut tally = Tally::default();
    let result = import_small(&db, store_path, &small, &bar, &errors, &mut tally)
        .and_then(|()| import_large(&db, store_path, &large, &bar, &errors, &mut tally));
    bar.finish_and_clear();
    // What was imported before a failure stays (the message says so): make
    // it as durable as a finished import, then report the failure.
    let synced = store::sync(&db, store_path, args.sync.no_sync);
    result?;
    synced?;
    tally.failed = errors.into_failed();
    if json {
        let failed = tally.failed.len();
        let mut out = Out::new();
        out.json(&ImportJson {
            dir: args.dir.display().to_string(),
            imported: tally.imported,
            bytes: tally.bytes,
            unchanged: tally.unchanged,
            not_regular,
            failed: std::mem::take(&mut tally.failed),
            synced: !args.sync.no_sync,
            seconds: started.elapsed().as_secs_f64(),
        })?;
        out.flush()?;
        return failed_status(failed, &[]);
    }
    eprintln!(
        "imported {} files ({}) from {} in {} ({}){}{}",
        output::count(tally.imported),
        output::bytes(tally.bytes),
        args.dir.display(),
        output::duration(started.elapsed()),
        output::byte_rate(tally.bytes, started.elapsed()),
        match tally.unchanged {
            0 => String::new(),
            n => format!("; {} unchanged files already stored", output::count(n)),
        },
        match not_regular {
            0 => String::new(),
            n => format!(
                "; skipped {n} entries that are not regular files (symlinks, sockets, the store itself)"
            ),
        }
    );
    failed_status(tally.failed.len(), &tally.failed)
}

/// Lists the files that could not be read; exit status 1 when there are any.
fn failed_status(count: usize, failed: &[Failed]) -> CliResult {
    for f in failed {
        eprintln!("could not read {}: {}", f.path, f.error);
    }
    if count == 0 {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Failure,
        format!(
            "{count} file(s) or directories could not be read and were not imported; \
             everything else is stored. Fix them and run the same import again \
             (unchanged files are skipped)"
        ),
    ))
}

/// Every regular file under `dir` but the store's own files, sorted by key,
/// and how many entries were skipped as not regular files.
fn collect(dir: &Path, store_path: &Path, errors: &Errors) -> CliResult<(Vec<Found>, u64)> {
    let meta = fs::metadata(dir).map_err(|e| CliError::io("cannot read directory", dir, &e))?;
    if !meta.is_dir() {
        return Err(CliError::new(
            Exit::Usage,
            format!(
                "{} is not a directory; import takes a directory (store one file with `mmblob put KEY FILE`)",
                dir.display()
            ),
        ));
    }
    let own = OwnFiles::of(store_path);
    let mut found = Vec::new();
    let mut skipped = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) => {
                errors.handle(&current, &e)?;
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    errors.handle(&current, &e)?;
                    continue;
                }
            };
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) => {
                    errors.handle(&path, &e)?;
                    continue;
                }
            };
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() && own.which(&meta).is_none() {
                found.push(found_file(dir, path, meta.len())?);
            } else {
                skipped += 1;
            }
        }
    }
    found.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    Ok((found, skipped))
}

fn found_file(dir: &Path, path: PathBuf, len: u64) -> CliResult<Found> {
    let relative = path.strip_prefix(dir).unwrap_or(&path);
    let key = store::key_bytes(relative.as_os_str(), true)?;
    Ok(Found { path, key, len })
}

/// The value stored under `key` when it is `len` bytes long: the only kind
/// that can be unchanged.
fn stored_with_len(
    db: &DataStore,
    store_path: &Path,
    key: &[u8],
    len: u64,
) -> CliResult<Option<EntryHandle>> {
    let stored = db.read(key).map_err(|e| CliError::store(store_path, e))?;
    Ok(stored.filter(|e| e.len() as u64 == len))
}

/// Reads batches of small files in parallel and writes each batch
/// atomically, leaving out files whose bytes are stored under their key.
fn import_small(
    db: &DataStore,
    store_path: &Path,
    files: &[&Found],
    bar: &ProgressBar,
    errors: &Errors,
    tally: &mut Tally,
) -> CliResult {
    for batch in batches(files) {
        let values = batch
            .par_iter()
            .map(|f| match fs::read(&f.path) {
                Ok(value) => {
                    let stored = stored_with_len(db, store_path, &f.key, value.len() as u64)?;
                    let unchanged = stored.is_some_and(|e| *e == *value);
                    Ok(Some((value, unchanged)))
                }
                Err(e) => errors.handle(&f.path, &e).map(|()| None),
            })
            .collect::<CliResult<Vec<Option<(Vec<u8>, bool)>>>>()?;
        let mut entries: Vec<(&[u8], &[u8])> = Vec::with_capacity(batch.len());
        for (f, value) in batch.iter().zip(&values) {
            let Some((value, unchanged)) = value else {
                continue;
            };
            bar.inc(value.len() as u64);
            if *unchanged {
                tally.unchanged += 1;
            } else {
                entries.push((f.key.as_slice(), value.as_slice()));
            }
        }
        db.batch_write(&entries)
            .map_err(|e| CliError::store(store_path, e))?;
        tally.imported += entries.len() as u64;
        tally.bytes += entries.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
    }
    Ok(())
}

/// Splits `files` into batches of at most [`BATCH_FILES`] files and about [`BATCH_BYTES`].
fn batches<'a>(files: &'a [&'a Found]) -> impl Iterator<Item = &'a [&'a Found]> + 'a {
    let mut rest = files;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let count = rest
            .iter()
            .take(BATCH_FILES)
            .take_while(|f| {
                bytes += f.len;
                bytes <= BATCH_BYTES
            })
            .count()
            .max(1);
        let (batch, tail) = rest.split_at(count);
        rest = tail;
        Some(batch)
    })
}

/// Streams each large file into the store, unless its bytes are stored
/// under its key already.
fn import_large(
    db: &DataStore,
    store_path: &Path,
    files: &[&Found],
    bar: &ProgressBar,
    errors: &Errors,
    tally: &mut Tally,
) -> CliResult {
    for file in files {
        let source = match File::open(&file.path) {
            Ok(source) => source,
            Err(e) => {
                errors.handle(&file.path, &e)?;
                continue;
            }
        };
        if let Some(stored) = stored_with_len(db, store_path, &file.key, file.len)? {
            match same_bytes(&source, &stored) {
                Ok(true) => {
                    bar.inc(file.len);
                    tally.unchanged += 1;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    errors.handle(&file.path, &e)?;
                    continue;
                }
            }
        }
        let mut source = match File::open(&file.path) {
            Ok(source) => Source::new(bar.wrap_read(source)),
            Err(e) => {
                errors.handle(&file.path, &e)?;
                continue;
            }
        };
        let written = db.write_stream(&file.key, &mut source);
        if let Err(e) = written {
            let error = source.blame(&file.path.display().to_string(), store_path, e);
            match source.failure() {
                Some(reason) if errors.skip => {
                    errors.handle(&file.path, &io::Error::other(reason.to_owned()))?;
                    continue;
                }
                _ => return Err(error),
            }
        }
        tally.imported += 1;
        tally.bytes += source.bytes_read();
    }
    Ok(())
}

/// Whether `file` holds exactly the bytes of `stored` (of the same length),
/// compared a piece at a time.
fn same_bytes(mut file: &File, stored: &[u8]) -> io::Result<bool> {
    let mut buf = vec![0u8; COMPARE_CHUNK];
    let mut at = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(at == stored.len());
        }
        if stored.get(at..at + n) != Some(&buf[..n]) {
            return Ok(false);
        }
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(len: u64) -> Found {
        Found {
            path: PathBuf::new(),
            key: Vec::new(),
            len,
        }
    }

    #[test]
    fn batches_respect_the_byte_budget() {
        let files: Vec<Found> = [BATCH_BYTES / 2, BATCH_BYTES / 2, 1, BATCH_BYTES * 2]
            .into_iter()
            .map(found)
            .collect();
        let refs: Vec<&Found> = files.iter().collect();
        let sizes: Vec<usize> = batches(&refs).map(<[&Found]>::len).collect();
        assert_eq!(sizes, [2, 1, 1]);
    }
}
