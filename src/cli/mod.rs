//! The `mmblob` command-line tool.

mod args;
mod commands;
mod demo;
mod error;
mod output;
mod progress;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use args::{Args, Command};
use commands::{compact, del, export, follow, get, import, ls, pull, push, put, stat, verify};
use error::CliResult;

/// Parses the command line, runs the command, and turns failures into one
/// line on stderr and a documented exit status.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => err.report(),
    }
}

fn run(args: &Args) -> CliResult {
    let path = args.store_path();
    match &args.command {
        Command::Demo(demo) => demo::run(args.store.as_deref(), demo, args.json),
        Command::Put(put) => put::run(&path, put),
        Command::Get(get) => get::run(&path, get),
        Command::Del(del) => del::run(&path, del),
        Command::Ls(ls) => ls::run(&path, ls, args.json),
        Command::Stat => stat::run(&path, args.json),
        Command::Verify => verify::run(&path, args.json),
        Command::Compact => compact::run(&path, args.json),
        Command::Import(import) => import::run(&path, import),
        Command::Export(export) => export::run(&path, export),
        Command::Push(push) => push::run(&path, push, args.json),
        Command::Pull(pull) => pull::run(pull, args.json),
        Command::Follow(follow) => follow::run(follow, args.json),
    }
}

/// Shows the library's `tracing` events on stderr when `RUST_LOG` is set
/// (for example `RUST_LOG=mmblob=info`).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::from_default_env();
    // Fails only when a subscriber is already installed, which is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
