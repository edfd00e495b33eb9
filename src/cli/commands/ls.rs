//! `mmblob ls [--prefix P] [--long]`: list keys.

use std::path::Path;

use serde::Serialize;

use crate::cli::args::LsArgs;
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Out};
use crate::cli::space::Space;
use crate::cli::store;

/// One listed entry.
#[derive(Debug, Serialize)]
struct Listed {
    /// The key as text (invalid UTF-8 replaced).
    key: String,
    /// The key's bytes in hex, only when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    /// Value length in bytes.
    size: u64,
    /// File offset of the value's first byte.
    offset: u64,
}

/// Runs `ls`.
pub fn run(store_path: &Path, args: &LsArgs, json: bool) -> CliResult {
    let db = store::open_read_only(store_path)?;
    let mut out = Out::new();
    if args.namespaces {
        let names = db
            .namespaces()
            .map_err(|e| CliError::store(store_path, e))?;
        if json {
            out.json(&names)?;
        } else {
            for name in &names {
                out.line(name)?;
            }
        }
        return out.flush();
    }
    let space = Space::new(&db, args.keys.ns.as_deref())?;
    let prefix = args
        .prefix
        .as_deref()
        .map_or_else(Vec::new, |p| store::key_arg(p, args.keys.raw_keys));
    let mut entries: Vec<_> = space.entries_with_prefix(&prefix).collect();
    entries.sort_unstable_by(|a, b| a.key().cmp(b.key()));
    if json {
        let listed: Vec<Listed> = entries.iter().map(|e| listed(&space, e)).collect();
        out.json(&listed)?;
    } else {
        for entry in &entries {
            out.line(human_line(&space, entry, args.long))?;
        }
    }
    out.flush()
}

fn listed(space: &Space<'_>, entry: &mmblob::EntryHandle) -> Listed {
    let key = space.key_of(entry.key());
    let text = std::str::from_utf8(key).ok();
    Listed {
        key: String::from_utf8_lossy(key).into_owned(),
        key_hex: text.is_none().then(|| output::hex(key)),
        size: entry.len() as u64,
        offset: entry.offset_range().start,
    }
}

fn human_line(space: &Space<'_>, entry: &mmblob::EntryHandle, long: bool) -> String {
    let key = output::key(space.key_of(entry.key()));
    if !long {
        return key;
    }
    format!(
        "{:>10}  {:>14}  {key}",
        output::bytes(entry.len() as u64),
        entry.offset_range().start
    )
}
