//! Memory of the test process, read from `/proc/self/status`.

/// Anonymous resident memory of this process, in bytes.
pub fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .expect("RssAnon line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("RssAnon value");
    kib * 1024
}
