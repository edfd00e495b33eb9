//! `mmblob verify`: recompute every checksum; exit status 4 on damage or on
//! bytes past the last complete entry.

use std::path::Path;
use std::time::Instant;

use mmblob::{Damage, DamageKind};
use serde::Serialize;

use crate::cli::error::{CliError, CliResult, Exit, salvage_hint};
use crate::cli::output::{self, Out};
use crate::cli::{progress, store};

/// `mmblob --json verify`.
#[derive(Debug, Serialize)]
struct VerifyJson {
    /// No damage and no ignored bytes.
    ok: bool,
    entries_checked: u64,
    bytes_checked: u64,
    seconds: f64,
    /// Bytes after the last complete entry that are not part of the store.
    torn_bytes: u64,
    damaged: Vec<DamageJson>,
    /// Keys whose newest entry is damaged (reading them fails).
    damaged_keys: Vec<DamagedKeyJson>,
}

/// One damaged stretch of the file.
#[derive(Debug, Serialize)]
pub struct DamageJson {
    start: u64,
    end: u64,
    /// `unreadable`, `checksum`, `incomplete_batch`, `torn_tail`, `truncated`.
    kind: &'static str,
    /// The key of an entry whose checksum fails, when it can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// Every key the damage hides (a damaged entry, or a batch hidden with it).
    keys: Vec<String>,
    description: String,
}

/// A key whose newest entry is damaged.
#[derive(Debug, Serialize)]
pub struct DamagedKeyJson {
    key: String,
    offset: u64,
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
    // Damage found at open (skipped bytes, truncation, torn bytes) and by
    // this verify, once each.
    let damaged: Vec<&Damage> = report.committed_damage().collect();
    let torn: Vec<&Damage> = report.damaged.iter().filter(|d| d.is_torn_tail()).collect();
    let torn_bytes = report.torn_bytes();
    let damaged_keys = db.damaged_keys();
    let mut out = Out::new();
    if json {
        out.json(&VerifyJson {
            ok: damaged.is_empty() && torn_bytes == 0,
            entries_checked: report.entries_checked,
            bytes_checked: report.bytes_checked,
            seconds: elapsed.as_secs_f64(),
            torn_bytes,
            damaged: report.damaged.iter().map(damage_json).collect(),
            damaged_keys: damaged_keys_json(&damaged_keys),
        })?;
    } else {
        for damage in &damaged {
            out.line(format!("damaged: {damage}"))?;
        }
        for damage in &torn {
            out.line(format!("ignored: {damage}"))?;
        }
        if !damaged_keys.is_empty() {
            out.line(format!(
                "damaged keys (reading them fails): {}",
                keys_list(damaged_keys.iter().map(|(k, _)| k.as_slice()))
            ))?;
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
    if !damaged.is_empty() {
        let keys = if damaged_keys.is_empty() {
            String::new()
        } else {
            format!(
                "; the newest value of {} {} damaged (reading {} fails with exit status 4)",
                keys_list(damaged_keys.iter().map(|(k, _)| k.as_slice())),
                if damaged_keys.len() == 1 { "is" } else { "are" },
                if damaged_keys.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            )
        };
        return Err(CliError::new(
            Exit::Damage,
            format!(
                "{} has {} damaged stretch(es){keys}. Every other entry is intact. {}",
                store_path.display(),
                damaged.len(),
                salvage_hint(store_path)
            ),
        ));
    }
    if torn_bytes > 0 {
        return Err(CliError::new(
            Exit::Damage,
            format!(
                "{}: {} after the last complete entry are not part of the store (an interrupted \
                 write, or a write in progress in another process); every committed entry is \
                 intact. The next writable command (put, del, import, compact) cuts them off",
                store_path.display(),
                output::bytes(torn_bytes)
            ),
        ));
    }
    Ok(())
}

/// Up to ten keys for a message, as `ls` shows them.
pub fn keys_list<'a>(keys: impl Iterator<Item = &'a [u8]>) -> String {
    const SHOWN: usize = 10;
    let keys: Vec<&[u8]> = keys.collect();
    let mut shown: Vec<String> = keys
        .iter()
        .take(SHOWN)
        .map(|k| format!("`{}`", output::key(k)))
        .collect();
    if keys.len() > SHOWN {
        shown.push(format!(
            "and {} more (`mmblob --json verify` lists all)",
            keys.len() - SHOWN
        ));
    }
    shown.join(", ")
}

/// The JSON form of one damaged stretch.
pub fn damage_json(damage: &Damage) -> DamageJson {
    let (kind, key) = match &damage.kind {
        DamageKind::Unreadable => ("unreadable", None),
        DamageKind::ChecksumMismatch { key, .. } => {
            ("checksum", (!key.is_empty()).then(|| output::key(key)))
        }
        DamageKind::IncompleteBatch { .. } => ("incomplete_batch", None),
        DamageKind::TornTail { .. } => ("torn_tail", None),
        DamageKind::Truncated { .. } => ("truncated", None),
        _ => ("other", None),
    };
    DamageJson {
        start: damage.range.start,
        end: damage.range.end,
        kind,
        key,
        keys: damage.keys().into_iter().map(output::key).collect(),
        description: damage.to_string(),
    }
}

/// The JSON form of [`mmblob::DataStore::damaged_keys`].
pub fn damaged_keys_json(keys: &[(Vec<u8>, u64)]) -> Vec<DamagedKeyJson> {
    keys.iter()
        .map(|(key, offset)| DamagedKeyJson {
            key: output::key(key),
            offset: *offset,
        })
        .collect()
}
