//! `mmblob stat`: what the store holds, what compaction would give back, and
//! what is damaged or ignored.

use std::path::Path;

use mmblob::format::FORMAT_VERSION;
use serde::Serialize;

use crate::cli::commands::verify::{
    DamageJson, DamagedKeyJson, damage_json, damaged_keys_json, keys_list,
};
use crate::cli::error::{CliResult, salvage_hint};
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
    /// Bytes after the last complete entry, ignored (an interrupted write).
    torn_bytes: u64,
    /// The damaged stretches and ignored bytes themselves.
    damaged: Vec<DamageJson>,
    /// Keys whose newest entry is damaged (reading them fails).
    damaged_keys: Vec<DamagedKeyJson>,
}

/// Runs `stat`.
pub fn run(store_path: &Path, json: bool) -> CliResult {
    let db = store::open_read_only(store_path)?;
    let stats = db.stats();
    let damage = db.damage();
    let damaged_keys = db.damaged_keys();
    let report = StatReport {
        path: store_path.display().to_string(),
        format_version: FORMAT_VERSION,
        entries: stats.live_entries,
        live_bytes: stats.live_bytes,
        reclaimable_bytes: stats.reclaimable_bytes,
        file_size: stats.file_size,
        index_memory_bytes: db.index_memory_bytes() as u64,
        damage: stats.damaged,
        torn_bytes: stats.torn_bytes,
        damaged: damage.iter().map(damage_json).collect(),
        damaged_keys: damaged_keys_json(&damaged_keys),
    };
    let mut out = Out::new();
    if json {
        out.json(&report)?;
    } else {
        human(&report).print(&mut out)?;
        for d in damage.iter().filter(|d| !d.is_torn_tail()) {
            out.line(format!("damaged: {d}"))?;
        }
        for d in damage.iter().filter(|d| d.is_torn_tail()) {
            out.line(format!("ignored: {d}"))?;
        }
        if !damaged_keys.is_empty() {
            out.line(format!(
                "damaged keys (reading them fails): {}",
                keys_list(damaged_keys.iter().map(|(k, _)| k.as_slice()))
            ))?;
        }
        if report.damage > 0 {
            out.line(format!(
                "`mmblob verify` checks every entry. {}",
                salvage_hint(store_path)
            ))?;
        }
    }
    out.flush()
}

fn human(report: &StatReport) -> Table {
    let mut table = Table::default();
    let share = 100.0 * report.reclaimable_bytes as f64 / report.file_size.max(1) as f64;
    let damage = match report.damage {
        0 => "none found at open (`mmblob verify` checks every byte)".to_owned(),
        n => format!("{n} damaged stretch(es), listed below"),
    };
    let torn = match report.torn_bytes {
        0 => "none".to_owned(),
        n => format!(
            "{} after the last complete entry, ignored (an interrupted write, or a write in \
             progress; a writable command cuts them)",
            output::bytes(n)
        ),
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
        ("torn bytes", torn),
    ];
    for (name, value) in rows {
        table.row([name.to_owned(), value]);
    }
    table
}
