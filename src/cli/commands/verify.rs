//! `mmblob verify`: recompute every checksum; exit status 4 on damage.

use std::path::Path;
use std::time::Instant;

use mmblob::{Damage, DamageKind};
use serde::Serialize;

use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output::{self, Out};
use crate::cli::{progress, store};

/// `mmblob --json verify`.
#[derive(Debug, Serialize)]
struct VerifyJson {
    ok: bool,
    entries_checked: u64,
    bytes_checked: u64,
    seconds: f64,
    damaged: Vec<DamageJson>,
}

/// One damaged stretch of the file.
#[derive(Debug, Serialize)]
struct DamageJson {
    start: u64,
    end: u64,
    /// The key of an entry whose checksum fails, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    description: String,
}

/// Runs `verify`.
pub fn run(store_path: &Path, json: bool) -> CliResult {
    let db = store::open_read_only(store_path)?;
    let started = Instant::now();
    let bar = progress::bytes(db.stats().file_size, "verify");
    let report = db.verify_with_progress(|n| bar.inc(n));
    bar.finish_and_clear();
    let report = report.map_err(|e| CliError::store(store_path, e))?;
    let elapsed = started.elapsed();
    // Damage found at open (skipped bytes) and by this verify, once each.
    let damaged = db.damage();
    let mut out = Out::new();
    if json {
        out.json(&VerifyJson {
            ok: damaged.is_empty(),
            entries_checked: report.entries_checked,
            bytes_checked: report.bytes_checked,
            seconds: elapsed.as_secs_f64(),
            damaged: damaged.iter().map(damage_json).collect(),
        })?;
    } else {
        for damage in &damaged {
            out.line(format!("damaged: {damage}"))?;
        }
        out.line(format!(
            "checked {} entries, {} in {} ({})",
            output::count(report.entries_checked),
            output::bytes(report.bytes_checked),
            output::duration(elapsed),
            output::byte_rate(report.bytes_checked, elapsed)
        ))?;
    }
    out.flush()?;
    match damaged.len() {
        0 => Ok(()),
        n => Err(CliError::new(
            Exit::Damage,
            format!(
                "{} has {n} damaged stretch(es); every other entry is intact. `mmblob export DIR` \
                 saves the intact values; to drop the damage, delete the damaged keys with \
                 `mmblob del KEY`, then run `mmblob compact`",
                store_path.display()
            ),
        )),
    }
}

fn damage_json(damage: &Damage) -> DamageJson {
    let key = match &damage.kind {
        DamageKind::ChecksumMismatch { key, .. } => Some(String::from_utf8_lossy(key).into_owned()),
        _ => None,
    };
    DamageJson {
        start: damage.range.start,
        end: damage.range.end,
        key,
        description: damage.to_string(),
    }
}
