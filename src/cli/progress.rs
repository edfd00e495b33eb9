//! Progress bars on stderr, drawn only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::cli::output;

/// Values at least this large get a progress bar in `put` and `get`.
pub const LARGE_VALUE: u64 = 16 << 20;

const BYTES_TEMPLATE: &str = "{msg:>10} [{bar:32}] {binary_bytes}/{binary_total_bytes} \
     {binary_bytes_per_sec} ETA {eta}";
const COUNT_TEMPLATE: &str = "{msg:>10} [{bar:32}] {human_pos}/{human_len} {rate} ETA {eta}";
const STREAM_TEMPLATE: &str = "{msg:>10} {spinner} {binary_bytes} {binary_bytes_per_sec}";

/// A bar counting `total` bytes.
pub fn bytes(total: u64, label: &'static str) -> ProgressBar {
    bar(Some(total), label, BYTES_TEMPLATE)
}

/// A bar counting `total` items.
pub fn count(total: u64, label: &'static str) -> ProgressBar {
    bar(Some(total), label, COUNT_TEMPLATE)
}

/// A spinner counting bytes of unknown total (standard input).
pub fn stream(label: &'static str) -> ProgressBar {
    bar(None, label, STREAM_TEMPLATE)
}

/// A bar for a value of `len` bytes: visible only for large values.
pub fn value(len: u64, label: &'static str) -> ProgressBar {
    if len >= LARGE_VALUE {
        bytes(len, label)
    } else {
        ProgressBar::hidden()
    }
}

fn bar(total: Option<u64>, label: &'static str, template: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", output::count(state.per_sec() as u64));
            },
        )
        .progress_chars("=> ");
    ProgressBar::with_draw_target(total, target)
        .with_style(style)
        .with_message(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for template in [BYTES_TEMPLATE, COUNT_TEMPLATE, STREAM_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
