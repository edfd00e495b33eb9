//! Human output (sizes in KiB/MiB/GiB, aligned tables) and JSON output.

use std::io::{self, BufWriter, StdoutLock, Write};
use std::time::Duration;

use serde::Serialize;

use crate::cli::error::{CliError, CliResult};

/// Buffered standard output whose errors become [`CliError`]s.
pub struct Out(BufWriter<StdoutLock<'static>>);

impl Out {
    /// Locks standard output.
    pub fn new() -> Self {
        Out(BufWriter::new(io::stdout().lock()))
    }

    /// Writes one line.
    pub fn line(&mut self, text: impl std::fmt::Display) -> CliResult {
        writeln!(self.0, "{text}").map_err(|e| CliError::stdout(&e))
    }

    /// Writes `value` as pretty JSON followed by a newline.
    pub fn json(&mut self, value: &impl Serialize) -> CliResult {
        serde_json::to_writer_pretty(&mut self.0, value)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(self.0))
            .map_err(|e| CliError::stdout(&e))
    }

    /// Flushes everything written so far.
    pub fn flush(&mut self) -> CliResult {
        self.0.flush().map_err(|e| CliError::stdout(&e))
    }

    /// The underlying writer, for streaming values.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.0
    }
}

/// `1536` → `"1.50 KiB"`; bytes below 1 KiB are shown exactly.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// `1234567` → `"1,234,567"`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in the unit that reads best: `"850 ms"`, `"2.41 s"`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else {
        format!("{secs:.2} s")
    }
}

/// Bytes per second: `"1.20 GiB/s"`.
pub fn byte_rate(n: u64, d: Duration) -> String {
    format!("{}/s", bytes(per_second(n, d) as u64))
}

/// Items per second with a unit: `"1.25 M entries/s"`.
pub fn count_rate(n: u64, d: Duration, unit: &str) -> String {
    let rate = per_second(n, d);
    if rate >= 1e6 {
        format!("{:.2} M {unit}/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k {unit}/s", rate / 1e3)
    } else {
        format!("{rate:.0} {unit}/s")
    }
}

fn per_second(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// A key for human output, in the form every key argument accepts back: as
/// text when it is printable UTF-8, else `0x` and its bytes in hex. A key
/// whose text itself reads as `0x` and hex digits is shown in hex too, so
/// what `ls` prints always names the same key again.
pub fn key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text)
            if !text.is_empty()
                && !text.chars().any(char::is_control)
                && crate::cli::store::decode_hex_key(key).is_none() =>
        {
            text.to_owned()
        }
        _ => format!("0x{}", hex(key)),
    }
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows of cells printed with aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
    /// Which columns are right-aligned (numbers read best so).
    right: Vec<bool>,
}

impl Table {
    /// A table whose columns are right-aligned where `right` says so.
    pub fn new(right: &[bool]) -> Self {
        Table {
            rows: Vec::new(),
            right: right.to_vec(),
        }
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Writes the table to `out`.
    pub fn print(&self, out: &mut Out) -> CliResult {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                let cell_width = |row: &Vec<String>| row.get(c).map_or(0, |s| s.chars().count());
                self.rows.iter().map(cell_width).max().unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, &w))| {
                    if self.right.get(c).copied().unwrap_or(false) {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            out.line(cells.join("  ").trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
        assert_eq!(bytes(1 << 30), "1.00 GiB");
    }

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_000_000), "1,000,000");
    }

    #[test]
    fn keys_are_text_or_hex() {
        assert_eq!(key(b"photos/cat.jpg"), "photos/cat.jpg");
        assert_eq!(key(&[0xff, 0x00]), "0xff00");
        assert_eq!(key(b"a\nb"), "0x610a62");
        assert_eq!(key(b"0xab"), "0x30786162");
        assert_eq!(key(b"0xabc"), "0xabc");
    }
}
