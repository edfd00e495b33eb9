//! `mmblob info KEY`: what the trailer of a value says, without reading it.

use std::path::Path;

use serde::Serialize;

use crate::cli::args::InfoArgs;
use crate::cli::error::{CliError, CliResult};
use crate::cli::output::{self, Out, Table};
use crate::cli::store;

/// `mmblob --json info KEY`.
#[derive(Debug, Serialize)]
struct InfoJson {
    key: String,
    key_hex: String,
    size: u64,
    payload_offset: u64,
    payload_end: u64,
    entry_offset: u64,
    entry_end: u64,
    trailer_offset: u64,
    checksum: String,
    key_hash: String,
    tombstone: bool,
    batch_continues: bool,
}

/// Runs `info`.
pub fn run(store_path: &Path, args: &InfoArgs, json: bool) -> CliResult {
    let key = store::key_bytes(&args.key, args.keys.raw_keys)?;
    let key = key.as_slice();
    let db = store::open_read_only(store_path)?;
    let space = crate::cli::space::Space::new(&db, args.keys.ns.as_deref())?;
    let info = space
        .entry_info(key)
        .map_err(|e| CliError::store(store_path, e))?
        .ok_or_else(|| CliError::key_not_found(store_path, key))?;
    let report = InfoJson {
        key: output::key(key),
        key_hex: output::hex(key),
        size: info.len,
        payload_offset: info.payload_range.start,
        payload_end: info.payload_range.end,
        entry_offset: info.entry_range.start,
        entry_end: info.entry_range.end,
        trailer_offset: info.trailer_offset,
        checksum: format!("{:#010x}", info.checksum),
        key_hash: format!("{:#018x}", info.key_hash),
        tombstone: info.tombstone,
        batch_continues: info.batch_continues,
    };
    let mut out = Out::new();
    if json {
        out.json(&report)?;
        return out.flush();
    }
    let mut table = Table::new(&[false, false]);
    let rows = [
        ("key", output::key(key)),
        (
            "size",
            format!("{} ({} bytes)", output::bytes(report.size), report.size),
        ),
        (
            "value at",
            format!("{}..{}", report.payload_offset, report.payload_end),
        ),
        (
            "entry at",
            format!("{}..{}", report.entry_offset, report.entry_end),
        ),
        ("trailer at", report.trailer_offset.to_string()),
        ("checksum", report.checksum.clone()),
        ("key hash", report.key_hash.clone()),
        (
            "written by",
            if report.batch_continues {
                "a batch (more entries of it follow)".into()
            } else {
                "a single write or the last entry of a batch".into()
            },
        ),
    ];
    for (name, value) in rows {
        table.row([name.to_owned(), value]);
    }
    table.print(&mut out)?;
    out.flush()
}
