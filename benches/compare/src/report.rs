//! Medians, ratios to mmblob, the printed table and the JSON file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::engines::Kind;
use crate::machine::Machine;
use crate::workloads::{Better, Measurement, Sizes, Workload};

/// What one child run produced, or why it failed.
pub struct Sample {
    pub workload: Workload,
    pub engine: Kind,
    pub result: std::result::Result<Measurement, String>,
}

/// One engine's numbers for one metric.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub engine: String,
    pub samples: Vec<f64>,
    pub median: Option<f64>,
    /// This engine's median divided by mmblob's median from the same run.
    pub ratio_to_mmblob: Option<f64>,
    /// "ok", "n/a" (the engine cannot run the workload), "error" or "not run".
    pub status: String,
}

/// One metric of one workload across engines.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub workload: String,
    pub metric: String,
    pub better: Better,
    /// Another view of a number in an earlier row (left out of the chart).
    pub secondary: bool,
    pub cells: Vec<Cell>,
}

/// Everything a run writes with `--json`.
#[derive(Serialize)]
pub struct Report<'a> {
    pub machine: &'a Machine,
    pub quick: bool,
    pub rounds: usize,
    pub sizes: &'a Sizes,
    pub elapsed_s: f64,
    pub rows: &'a [Row],
    pub notes: &'a [String],
    pub errors: &'a [String],
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn metric_names(samples: &[Sample], workload: Workload) -> Vec<(String, Better, bool)> {
    let mut names: Vec<(String, Better, bool)> = Vec::new();
    let ok = samples
        .iter()
        .filter(|s| s.workload == workload)
        .filter_map(|s| s.result.as_ref().ok());
    for m in ok.flat_map(|m| m.metrics.iter()) {
        if !names.iter().any(|(n, _, _)| *n == m.name) {
            names.push((m.name.clone(), m.better, m.secondary));
        }
    }
    names
}

fn cell(samples: &[Sample], workload: Workload, engine: Kind, metric: &str) -> Cell {
    let runs: Vec<_> = samples
        .iter()
        .filter(|s| s.workload == workload && s.engine == engine)
        .collect();
    let ok: Vec<&Measurement> = runs.iter().filter_map(|s| s.result.as_ref().ok()).collect();
    let mut values: Vec<f64> = ok
        .iter()
        .flat_map(|m| m.metrics.iter().filter(|x| x.name == metric))
        .filter_map(|x| x.value)
        .collect();
    let status = match (runs.is_empty(), values.is_empty(), ok.is_empty()) {
        (true, _, _) => "not run",
        (_, false, _) => "ok",
        (_, true, true) => "error",
        (_, true, false) => "n/a",
    };
    let samples_kept = values.clone();
    Cell {
        engine: engine.name().into(),
        median: median(&mut values),
        samples: samples_kept,
        ratio_to_mmblob: None,
        status: status.into(),
    }
}

/// Medians per (workload, metric, engine) with ratios to mmblob.
pub fn aggregate(samples: &[Sample], workloads: &[Workload], engines: &[Kind]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &w in workloads {
        for (metric, better, secondary) in metric_names(samples, w) {
            let mut cells: Vec<Cell> = engines
                .iter()
                .map(|&e| cell(samples, w, e, &metric))
                .collect();
            let base = cells
                .iter()
                .find(|c| c.engine == Kind::Mmblob.name())
                .and_then(|c| c.median);
            for c in &mut cells {
                c.ratio_to_mmblob = match (c.median, base, better) {
                    (Some(v), Some(b), Better::Higher | Better::Lower) if b > 0.0 => Some(v / b),
                    _ => None,
                };
            }
            rows.push(Row {
                workload: w.name().into(),
                metric,
                better,
                secondary,
                cells,
            });
        }
    }
    rows
}

/// Notes the children attached, one line per (engine, note) with the workloads it applies to.
pub fn notes(samples: &[Sample]) -> Vec<String> {
    let mut grouped: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for m in samples.iter().filter_map(|s| s.result.as_ref().ok()) {
        if let Some(note) = &m.note {
            let workloads = grouped.entry((m.engine.clone(), note.clone())).or_default();
            if !workloads.contains(&m.workload) {
                workloads.push(m.workload.clone());
            }
        }
    }
    grouped
        .into_iter()
        .map(|((e, n), ws)| format!("{e} [{}]: {n}", ws.join(", ")))
        .collect()
}

fn sig(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && a < 0.0001 {
        format!("{v:.2e}")
    } else if a < 0.01 {
        format!("{v:.4}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A number with three significant digits and a k/M/G suffix.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", sig(v / 1e9))
    } else if a >= 1e6 {
        format!("{}M", sig(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", sig(v / 1e3))
    } else {
        sig(v)
    }
}

/// A ratio such as `0.42×`.
pub fn ratio_text(r: f64) -> String {
    if r < 0.001 {
        "<0.001×".into()
    } else if r < 0.01 {
        format!("{r:.3}×")
    } else {
        format!("{}×", sig(r))
    }
}

fn cell_text(c: &Cell) -> String {
    match (c.median, c.ratio_to_mmblob) {
        (Some(v), Some(r)) => format!("{} {}", human(v), ratio_text(r)),
        (Some(v), None) => human(v),
        (None, _) => c.status.clone(),
    }
}

fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(len)))
}

/// The table: one line per (workload, metric), one column per engine.
pub fn table(rows: &[Row], engines: &[Kind]) -> String {
    let label = |r: &Row| {
        let arrow = match r.better {
            Better::Higher => " ↑",
            Better::Lower => " ↓",
            Better::Info => "",
        };
        format!("{} {}{arrow}", r.workload, r.metric)
    };
    let first = rows
        .iter()
        .map(|r| label(r).chars().count())
        .max()
        .unwrap_or(8)
        .max(8)
        + 2;
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.cells.iter().map(cell_text).collect())
        .collect();
    let width = texts
        .iter()
        .flatten()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(8)
        .max(14)
        + 2;
    let mut out = pad("workload metric", first);
    for e in engines {
        out.push_str(&pad(e.name(), width));
    }
    out.push('\n');
    for (r, cells) in rows.iter().zip(&texts) {
        out.push_str(&pad(&label(r), first));
        for t in cells {
            out.push_str(&pad(t, width));
        }
        out.push('\n');
    }
    out
}

/// Writes the report as pretty JSON.
pub fn write_json(path: &Path, report: &Report<'_>) -> Result<()> {
    let mut text = serde_json::to_string_pretty(report)?;
    let _ = writeln!(text);
    std::fs::write(path, text)?;
    Ok(())
}
