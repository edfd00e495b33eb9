//! Names the machine a run was measured on.

use std::process::Command;

use serde::Serialize;

/// CPU model, core count and kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub nproc: usize,
    pub kernel: String,
}

impl Machine {
    /// Reads /proc/cpuinfo, the available parallelism and `uname -sr`.
    pub fn detect() -> Machine {
        Machine {
            cpu: cpu_model(),
            nproc: nproc(),
            kernel: kernel(),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {} cores, {}", self.cpu, self.nproc, self.kernel)
    }
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

fn kernel() -> String {
    let uname = Command::new("uname")
        .arg("-sr")
        .output()
        .ok()
        .filter(|o| o.status.success());
    match uname {
        Some(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        None => std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "unknown kernel".into()),
    }
}
