//! `mmblob put KEY [FILE]`: store a file or standard input, streamed.

use std::fs::{File, Metadata};
use std::io::{self, IsTerminal, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::cli::args::PutArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::own_files::OwnFiles;
use crate::cli::{progress, store};

/// `mmblob --json put`.
#[derive(Debug, Serialize)]
struct PutJson {
    /// The key as `ls` shows it.
    key: String,
    /// The key's bytes in hex.
    key_hex: String,
    /// Value length in bytes.
    size: u64,
    /// Whether the store was synced before reporting (not with `--no-sync`).
    synced: bool,
    seconds: f64,
}

/// Runs `put`.
pub fn run(store_path: &Path, args: &PutArgs, json: bool) -> CliResult {
    let key = store::key_bytes(&args.key, args.keys.raw_keys)?;
    let started = Instant::now();
    let (reader, meta, bar) = open_source(args.file.as_deref())?;
    let input = args
        .file
        .as_ref()
        .map_or_else(|| "standard input".to_owned(), |p| p.display().to_string());
    if let Some(what) = meta
        .as_ref()
        .and_then(|m| OwnFiles::of(store_path).which(m))
    {
        return Err(OwnFiles::refusal(
            Path::new(&input),
            what,
            "read the value from",
        ));
    }
    let mut source = Source::new(bar.wrap_read(reader));
    let db = store::open_writable(store_path, true)?;
    let space = crate::cli::space::Space::new(&db, args.keys.ns.as_deref())?;
    let written = space.write_stream(&key, &mut source);
    bar.finish_and_clear();
    written.map_err(|e| source.blame(&input, store_path, e))?;
    store::sync(&db, store_path, args.sync.no_sync)?;
    if json {
        let mut out = Out::new();
        out.json(&PutJson {
            key: output::key(&key),
            key_hex: output::hex(&key),
            size: bar.position(),
            synced: !args.sync.no_sync,
            seconds: started.elapsed().as_secs_f64(),
        })?;
        return out.flush();
    }
    eprintln!(
        "stored {} ({}) in {}",
        output::key(&key),
        output::bytes(bar.position()),
        output::duration(started.elapsed())
    );
    Ok(())
}

/// The value's source, what it is (device and inode, when it can be told)
/// and a progress bar fitting its size.
fn open_source(file: Option<&Path>) -> CliResult<(Box<dyn Read>, Option<Metadata>, ProgressBar)> {
    let Some(path) = file else {
        if io::stdin().is_terminal() {
            eprintln!("reading the value from standard input; end it with Ctrl-D");
        }
        let meta = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| File::from(fd).metadata().ok());
        return Ok((Box::new(io::stdin().lock()), meta, progress::stream("put")));
    };
    let opened = File::open(path).map_err(|e| CliError::io("cannot read", path, &e))?;
    let meta = opened
        .metadata()
        .map_err(|e| CliError::io("cannot read", path, &e))?;
    let bar = progress::value(meta.len(), "put");
    Ok((Box::new(opened), Some(meta), bar))
}

/// The input of `write_stream`; it remembers a failed read, so that a failed
/// write can be blamed on the input rather than on the store.
pub struct Source<R> {
    inner: R,
    failure: Option<String>,
    read: u64,
}

impl<R: Read> Source<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Source {
            inner,
            failure: None,
            read: 0,
        }
    }

    /// Why reading failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The error to report for a failed `write_stream` from this source,
    /// named `input` in the message.
    pub fn blame(&self, input: &str, store_path: &Path, err: mmblob::Error) -> CliError {
        match &self.failure {
            Some(reason) => CliError::new(Exit::Failure, format!("cannot read {input}: {reason}")),
            None => CliError::store(store_path, err),
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failure = Some(e.to_string());
            }
        })?;
        self.read += n as u64;
        Ok(n)
    }
}
