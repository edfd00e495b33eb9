//! The `mmblob` command-line tool.

mod args;
mod atomic;
mod commands;
mod demo;
mod error;
mod interrupt;
mod output;
mod own_files;
mod progress;
mod space;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use args::{Args, Command};
use commands::{
    backup, compact, cp, del, export, follow, get, import, info, ls, mv, pull, push, put, salvage,
    stat, verify,
};
use error::CliResult;

/// Parses the command line, runs the command, and turns failures into one
/// line on stderr and a documented exit status.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    interrupt::install();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if interrupt::interrupted() => {
            // The Ctrl-C handler is removing this command's temporary files
            // and will exit with status 130: errors caused by that are not
            // worth a word.
            loop {
                std::thread::park();
            }
        }
        Err(err) => err.report(),
    }
}

fn run(args: &Args) -> CliResult {
    let path = args.store_path();
    match &args.command {
        Command::Demo(demo) => demo::run(args.store.as_deref(), demo, args.json),
        Command::Put(put) => put::run(&path, put, args.json),
        Command::Get(get) => get::run(&path, get, args.json),
        Command::Del(del) => del::run(&path, del, args.json),
        Command::Ls(ls) => ls::run(&path, ls, args.json),
        Command::Stat => stat::run(&path, args.json),
        Command::Verify => verify::run(&path, args.json),
        Command::Compact(compact) => compact::run(&path, compact, args.json),
        Command::Import(import) => import::run(&path, import, args.json),
        Command::Export(export) => export::run(&path, export, args.json),
        Command::Mv(mv) => mv::run(&path, mv, args.json),
        Command::Cp(cp) => cp::run(&path, cp, args.json),
        Command::Info(info) => info::run(&path, info, args.json),
        Command::Backup(backup) => backup::run(&path, backup, args.json),
        Command::Salvage(salvage) => salvage::run(salvage, args.json),
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
