//! `mmblob get KEY [-o FILE]`: stream a value to standard output or a file.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;

use indicatif::ProgressBar;
use mmblob::EntryHandle;

use crate::cli::args::GetArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::Out;
use crate::cli::{output, progress, store};

/// Largest piece handed to one `write` call, so progress moves smoothly.
const CHUNK: usize = 1 << 20;

/// Runs `get`.
pub fn run(store_path: &Path, args: &GetArgs) -> CliResult {
    let key = store::key_bytes(&args.key)?;
    let db = store::open_read_only(store_path)?;
    let entry = db
        .read(key)
        .map_err(|e| CliError::store(store_path, e))?
        .ok_or_else(|| CliError::key_not_found(store_path, key))?;
    if !args.no_verify && !entry.verify_checksum() {
        return Err(CliError::new(
            Exit::Damage,
            format!(
                "the value of {} in {} fails its checksum, so nothing was written; \
                 `mmblob get --no-verify` writes the bytes as they are",
                output::key(key),
                store_path.display()
            ),
        ));
    }
    let bar = progress::value(entry.len() as u64, "get");
    let result = match args.output.as_deref() {
        Some(path) if path != Path::new("-") => to_file(&entry, path, &bar),
        _ => to_stdout(&entry, &bar),
    };
    bar.finish_and_clear();
    result
}

fn to_stdout(entry: &EntryHandle, bar: &ProgressBar) -> CliResult {
    let mut out = Out::new();
    copy_value(entry, out.writer(), bar).map_err(|e| CliError::stdout(&e))?;
    out.flush()
}

fn to_file(entry: &EntryHandle, path: &Path, bar: &ProgressBar) -> CliResult {
    let write = || -> io::Result<()> {
        let mut file = BufWriter::new(File::create(path)?);
        copy_value(entry, &mut file, bar)?;
        file.flush()
    };
    write().map_err(|e| CliError::io("cannot write", path, &e))
}

/// Streams the value into `out` straight from the memory map: `fill_buf`
/// lends the rest of the payload, which is written in pieces of [`CHUNK`].
pub fn copy_value(entry: &EntryHandle, out: &mut impl Write, bar: &ProgressBar) -> io::Result<()> {
    let mut stream = entry.stream();
    loop {
        let rest = stream.fill_buf()?;
        if rest.is_empty() {
            return Ok(());
        }
        let n = rest.len().min(CHUNK);
        out.write_all(&rest[..n])?;
        stream.consume(n);
        bar.inc(n as u64);
    }
}
