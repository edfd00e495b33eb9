//! `mmblob import DIR`: store every file under DIR, keyed by its relative path.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use mmblob::DataStore;
use rayon::prelude::*;

use super::put::Source;
use crate::cli::args::ImportArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::{output, progress, store};

/// Files at least this large are streamed one by one; smaller ones are read
/// in parallel and written in atomic batches.
const STREAM_THRESHOLD: u64 = 4 << 20;
/// Most bytes of small files held in memory for one batch.
const BATCH_BYTES: u64 = 64 << 20;
/// Most files in one batch.
const BATCH_FILES: usize = 4096;

/// A file found under the imported directory.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    /// Path relative to the directory: the key.
    key: Vec<u8>,
    len: u64,
}

/// Runs `import`.
pub fn run(store_path: &Path, args: &ImportArgs) -> CliResult {
    let started = Instant::now();
    let (files, skipped) = collect(&args.dir, store_path)?;
    let db = store::open_writable(store_path, true)?;
    let total: u64 = files.iter().map(|f| f.len).sum();
    let bar = progress::bytes(total, "import");
    let (small, large): (Vec<&Found>, Vec<&Found>) =
        files.iter().partition(|f| f.len < STREAM_THRESHOLD);
    let result = import_small(&db, store_path, &small, &bar)
        .and_then(|()| import_large(&db, store_path, &large, &bar));
    bar.finish_and_clear();
    result?;
    eprintln!(
        "imported {} files ({}) from {} in {} ({}){}",
        output::count(files.len() as u64),
        output::bytes(total),
        args.dir.display(),
        output::duration(started.elapsed()),
        output::byte_rate(total, started.elapsed()),
        match skipped {
            0 => String::new(),
            n => format!(
                "; skipped {n} entries that are not regular files (symlinks, sockets, the store itself)"
            ),
        }
    );
    Ok(())
}

/// Every regular file under `dir` but the store itself, sorted by key, and
/// how many entries were skipped.
fn collect(dir: &Path, store_path: &Path) -> CliResult<(Vec<Found>, u64)> {
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
        let entries = fs::read_dir(&current)
            .map_err(|e| CliError::io("cannot read directory", &current, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CliError::io("cannot read directory", &current, &e))?;
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(|e| CliError::io("cannot read", &path, &e))?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() && !own.contains(&path) {
                found.push(found_file(dir, path, meta.len())?);
            } else {
                skipped += 1;
            }
        }
    }
    found.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    Ok((found, skipped))
}

/// The store file and the files the library keeps beside it (index
/// snapshot, compaction temporary), which import must never read.
struct OwnFiles {
    /// The store's directory, canonical; `None` if it does not exist.
    dir: Option<PathBuf>,
    names: [OsString; 3],
}

impl OwnFiles {
    fn of(store_path: &Path) -> Self {
        let name = store_path.file_name().unwrap_or_default();
        let with = |before: &str, after: &str| {
            let mut full = OsString::from(before);
            full.push(name);
            full.push(after);
            full
        };
        let parent = match store_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        OwnFiles {
            dir: parent.canonicalize().ok(),
            names: [with("", ""), with("", ".index"), with(".", ".compacting")],
        }
    }

    fn contains(&self, path: &Path) -> bool {
        let named = path
            .file_name()
            .is_some_and(|n| self.names.iter().any(|own| own == n));
        named && self.dir.is_some() && path.parent().and_then(|p| p.canonicalize().ok()) == self.dir
    }
}

fn found_file(dir: &Path, path: PathBuf, len: u64) -> CliResult<Found> {
    let relative = path.strip_prefix(dir).unwrap_or(&path);
    let key = store::key_bytes(relative.as_os_str())?.to_vec();
    Ok(Found { path, key, len })
}

/// Reads batches of small files in parallel and writes each batch atomically.
fn import_small(
    db: &DataStore,
    store_path: &Path,
    files: &[&Found],
    bar: &ProgressBar,
) -> CliResult {
    for batch in batches(files) {
        let values = batch
            .par_iter()
            .map(|f| fs::read(&f.path).map_err(|e| CliError::io("cannot read", &f.path, &e)))
            .collect::<CliResult<Vec<Vec<u8>>>>()?;
        let entries: Vec<(&[u8], &[u8])> = batch
            .iter()
            .zip(&values)
            .map(|(f, v)| (f.key.as_slice(), v.as_slice()))
            .collect();
        db.batch_write(&entries)
            .map_err(|e| CliError::store(store_path, e))?;
        bar.inc(values.iter().map(|v| v.len() as u64).sum());
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

/// Streams each large file into the store.
fn import_large(
    db: &DataStore,
    store_path: &Path,
    files: &[&Found],
    bar: &ProgressBar,
) -> CliResult {
    for file in files {
        let source =
            File::open(&file.path).map_err(|e| CliError::io("cannot read", &file.path, &e))?;
        let mut source = Source::new(bar.wrap_read(source));
        db.write_stream(&file.key, &mut source)
            .map_err(|e| source.blame(&file.path.display().to_string(), store_path, e))?;
    }
    Ok(())
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
