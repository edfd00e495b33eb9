//! `mmblob`: put, get, list, verify and compact a store file from a shell,
//! and `mmblob demo` to see the store at work. Run `mmblob --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
