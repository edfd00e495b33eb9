//! `mmblob stat`: what the store holds and what compaction would give back.

use std::path::Path;

use mmblob::format::FORMAT_VERSION;
use serde::Serialize;

use crate::cli::error::CliResult;
use crate::cli::output::{self, Out, Table};
use crate::cli::store;

/// `mmblob --json stat`.
#[derive(Debug, Serialize)]
struct StatReport {
    path: String,
    format_version: u32,
    entries: u64,
    live_bytes: u64,
    reclaimable_bytes: u64,
    file_size: u64,
    index_memory_bytes: u64,
    /// Damaged stretches found while opening (a full check is `mmblob verify`).
    damage: u64,
}

/// Runs `stat`.
pub fn run(store_path: &Path, json: bool) -> CliResult {
    let db = store::open_read_only(store_path)?;
    let stats = db.stats();
    let report = StatReport {
        path: store_path.display().to_string(),
        format_version: FORMAT_VERSION,
        entries: stats.live_entries,
        live_bytes: stats.live_bytes,
        reclaimable_bytes: stats.reclaimable_bytes,
        file_size: stats.file_size,
        index_memory_bytes: db.index_memory_bytes() as u64,
        damage: db.damage().len() as u64,
    };
    let mut out = Out::new();
    if json {
        out.json(&report)?;
    } else {
        human(&report).print(&mut out)?;
    }
    out.flush()
}

fn human(report: &StatReport) -> Table {
    let mut table = Table::default();
    let share = 100.0 * report.reclaimable_bytes as f64 / report.file_size.max(1) as f64;
    let damage = match report.damage {
        0 => "none found at open (`mmblob verify` checks every byte)".to_owned(),
        n => format!("{n} damaged stretch(es); run `mmblob verify` for details"),
    };
    let rows = [
        ("store", report.path.clone()),
        ("format version", report.format_version.to_string()),
        ("entries", output::count(report.entries)),
        ("live bytes", output::bytes(report.live_bytes)),
        (
            "reclaimable",
            format!(
                "{} ({share:.1}% of the file)",
                output::bytes(report.reclaimable_bytes)
            ),
        ),
        ("file size", output::bytes(report.file_size)),
        ("index memory", output::bytes(report.index_memory_bytes)),
        ("damage", damage),
    ];
    for (name, value) in rows {
        table.row([name.to_owned(), value]);
    }
    table
}
