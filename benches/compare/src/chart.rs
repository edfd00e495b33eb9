//! An SVG bar chart of each peer's ratio to mmblob (plotters, SVG backend only).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::engines::Kind;
use crate::report::{Row, ratio_text};
use crate::workloads::Better;

const ROW_GAP: usize = 1;
const SLOT_PX: u32 = 16;

fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Mmblob => RGBColor(0, 0, 0),
        Kind::SimdRDrive => RGBColor(230, 97, 1),
        Kind::Heed => RGBColor(94, 60, 153),
        Kind::Redb => RGBColor(178, 24, 43),
        Kind::Raw => RGBColor(120, 120, 120),
        Kind::MmblobHandles => RGBColor(70, 70, 70),
        Kind::SqliteInt => RGBColor(33, 102, 172),
        Kind::SqliteIntMmap => RGBColor(67, 147, 195),
        Kind::SqliteText => RGBColor(27, 120, 55),
        Kind::SqliteTextMmap => RGBColor(90, 174, 97),
        Kind::Files => RGBColor(191, 129, 45),
    }
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

/// The ratio of `peer` in `row`, if there is one.
fn ratio(row: &Row, peer: Kind) -> Option<f64> {
    row.cells
        .iter()
        .find(|c| c.engine == peer.name())
        .and_then(|c| c.ratio_to_mmblob)
}

/// The text after a bar and where it starts (`None`: at the axis), or
/// nothing if the peer has no number for this row.
fn bar_label(row: &Row, peer: Kind) -> Option<(String, Option<f64>)> {
    let cell = row.cells.iter().find(|c| c.engine == peer.name())?;
    match cell.ratio_to_mmblob {
        Some(v) => Some((format!(" {}", ratio_text(v)), Some(v))),
        None if cell.status != "ok" => Some((format!(" {}", cell.status), None)),
        None => None,
    }
}

/// Whether `row` gets bars: a primary metric with a direction.
fn charted(row: &Row) -> bool {
    row.better != Better::Info && !row.secondary
}

/// The range of the log axis, padded and always containing 1.
fn x_range(rows: &[&Row], peers: &[Kind]) -> (f64, f64) {
    let ratios = rows
        .iter()
        .flat_map(|r| peers.iter().filter_map(|&p| ratio(r, p)));
    let (lo, hi) = ratios.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (lo / 2.0, hi * 2.0)
}

/// Draws the chart of every higher- or lower-is-better row into `path`.
pub fn write_svg(path: &Path, rows: &[Row], engines: &[Kind], title: &str) -> Result<()> {
    let peers: Vec<Kind> = engines
        .iter()
        .copied()
        .filter(|&k| k != Kind::Mmblob)
        .collect();
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| charted(r) && peers.iter().any(|&p| ratio(r, p).is_some()))
        .collect();
    let per_row = peers.len() + ROW_GAP;
    let slots = (rows.len() * per_row).max(1);
    let height = 140 + SLOT_PX * slots as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (lo, hi) = x_range(&rows, &peers);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(230)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..slots as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("peer ÷ mmblob, same run (log scale; ↑ rows: > 1 means the peer is faster, ↓ rows: < 1 means it is smaller)")
        .draw()
        .map_err(err)?;
    let top = slots as f64;
    for (p, &peer) in peers.iter().enumerate() {
        let bars = rows.iter().enumerate().filter_map(|(i, r)| {
            let y = top - (i * per_row + p) as f64;
            ratio(r, peer)
                .map(|v| Rectangle::new([(lo, y - 0.9), (v, y - 0.1)], color(peer).filled()))
        });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(peer.name())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], color(peer).filled())
            });
        let values = rows.iter().enumerate().filter_map(|(i, r)| {
            let y = top - (i * per_row + p) as f64 - 0.5;
            let style = TextStyle::from(("sans-serif", 11)).pos(Pos::new(HPos::Left, VPos::Center));
            bar_label(r, peer).map(|(text, x)| Text::new(text, (x.unwrap_or(lo), y), style))
        });
        chart.draw_series(values).map_err(err)?;
    }
    let one = PathElement::new(vec![(1.0, 0.0), (1.0, top)], BLACK.stroke_width(2));
    chart.draw_series(std::iter::once(one)).map_err(err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    let label_style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, r) in rows.iter().enumerate() {
        let y = top - (i * per_row) as f64 - peers.len() as f64 / 2.0;
        let (px, py) = chart.backend_coord(&(lo, y));
        let arrow = if r.better == Better::Lower {
            "↓"
        } else {
            "↑"
        };
        let text = format!("{} {} {arrow}", r.workload, r.metric);
        root.draw(&Text::new(text, (px - 8, py), label_style.clone()))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
