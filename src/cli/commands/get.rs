//! `mmblob get KEY [-o FILE]`: stream a value to standard output or a file.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;
use mmblob::EntryHandle;
use serde::Serialize;

use crate::cli::args::GetArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::own_files::OwnFiles;
use crate::cli::{atomic, progress, store};

/// Largest piece handed to one `write` call, so progress moves smoothly.
const CHUNK: usize = 1 << 20;

/// `mmblob --json get KEY -o FILE`.
#[derive(Debug, Serialize)]
struct GetJson {
    /// The key as `ls` shows it.
    key: String,
    /// The key's bytes in hex.
    key_hex: String,
    /// Value length in bytes.
    size: u64,
    /// The file written.
    output: String,
    /// Whether the checksum was checked before writing (not with `--no-verify`).
    checksum_verified: bool,
    seconds: f64,
}

/// Runs `get`.
pub fn run(store_path: &Path, args: &GetArgs, json: bool) -> CliResult {
    let started = Instant::now();
    let key = store::key_bytes(&args.key, args.keys.raw_keys)?;
    let output_file = args.output.as_deref().filter(|p| *p != Path::new("-"));
    if json && output_file.is_none() {
        return Err(CliError::new(
            Exit::Usage,
            "--json prints a report on standard output, where `get` writes the value; \
             give the value a file with `-o FILE`, or drop --json",
        ));
    }
    if let Some(path) = output_file
        && let Some(what) = OwnFiles::of(store_path).which_path(path)
    {
        return Err(OwnFiles::refusal(path, what, "write the value over"));
    }
    let db = store::open_read_only(store_path)?;
    let space = crate::cli::space::Space::new(&db, args.keys.ns.as_deref())?;
    let entry = space
        .read(&key)
        .map_err(|e| CliError::store(store_path, e))?
        .ok_or_else(|| CliError::key_not_found(store_path, &key))?;
    if !args.no_verify && !entry.verify_checksum() {
        return Err(CliError::new(
            Exit::Damage,
            format!(
                "the value of {} in {} fails its checksum, so nothing was written; \
                 `mmblob get --no-verify` writes the bytes as they are",
                output::key(&key),
                store_path.display()
            ),
        ));
    }
    let bar = progress::value(entry.len() as u64, "get");
    let result = match output_file {
        Some(path) => to_file(&entry, path, &bar),
        None => to_stdout(&entry, &bar),
    };
    bar.finish_and_clear();
    result?;
    if json && let Some(path) = output_file {
        let mut out = Out::new();
        out.json(&GetJson {
            key: output::key(&key),
            key_hex: output::hex(&key),
            size: entry.len() as u64,
            output: path.display().to_string(),
            checksum_verified: !args.no_verify,
            seconds: started.elapsed().as_secs_f64(),
        })?;
        out.flush()?;
    }
    Ok(())
}

fn to_stdout(entry: &EntryHandle, bar: &ProgressBar) -> CliResult {
    let mut out = Out::new();
    copy_value(entry, out.writer(), bar).map_err(|e| CliError::stdout(&e))?;
    out.flush()
}

/// Writes the value to `path` through a temporary file renamed into place.
fn to_file(entry: &EntryHandle, path: &Path, bar: &ProgressBar) -> CliResult {
    atomic::write_file(path, |out| copy_value(entry, out, bar))
        .map_err(|e| CliError::io("cannot write", path, &e))
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
