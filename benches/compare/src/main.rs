//! Side-by-side benchmark of mmblob against simd-r-drive, LMDB (heed), redb
//! and a raw file.
//!
//! The parent process runs every (engine, workload) measurement as a fresh
//! child process of this binary in a fresh temporary directory, interleaving
//! the engines round by round, and prints medians and ratios to mmblob.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- --all
//! ```

mod chart;
mod data;
mod engines;
mod machine;
mod mem;
mod report;
mod workloads;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use engines::Kind;
use machine::Machine;
use report::{Report, Sample};
use workloads::{Fixture, Measurement, Sizes, Workload};

const USAGE: &str = "\
usage: mmblob-compare (--all | --workload NAME ...) [options]

  --all               run every workload
  --workload NAME     run one workload (repeat for more): put1 putbatch putlarge
                      get get2t getbatch get10k scan parscan stream reopen put1sync
                      put1sync8t memory
  --engine NAME       run only these engines (repeat; default all):
                      mmblob mmblob-h simd-r-drive heed redb raw sqlite-int
                      sqlite-int-mmap sqlite-text sqlite-text-mmap files
                      (sqlite-* and files run only get10k, which runs only
                      them and mmblob, mmblob-h)
  --rounds N          rounds per workload (default 3; memory always runs once)
  --quick             smaller sizes, for a smoke test
  --json FILE         write the results as JSON
  --svg FILE          write a bar chart of the ratios to mmblob as SVG
";

/// Options of the parent process.
struct Args {
    workloads: Vec<Workload>,
    engines: Vec<Kind>,
    rounds: usize,
    quick: bool,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
}

/// Options of a child process:
/// `--child ENGINE WORKLOAD [--build DIR | --fixture DIR] [--quick]`.
struct ChildArgs {
    engine: Kind,
    workload: Workload,
    /// Build the workload's fixture into this directory instead of measuring.
    build: Option<PathBuf>,
    /// Copy this fixture into the fresh directory before measuring.
    fixture: Option<PathBuf>,
    quick: bool,
}

fn value(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<String> {
    it.next().with_context(|| format!("{flag} needs a value"))
}

fn parse_args(args: Vec<String>) -> Result<Option<Args>> {
    let mut a = Args {
        workloads: vec![],
        engines: vec![],
        rounds: 3,
        quick: false,
        json: None,
        svg: None,
    };
    let mut all = false;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--all" => all = true,
            "--workload" => a.workloads.push(Workload::parse(&value(&mut it, &flag)?)?),
            "--engine" => a.engines.push(Kind::parse(&value(&mut it, &flag)?)?),
            "--rounds" => {
                a.rounds = value(&mut it, &flag)?
                    .parse()
                    .context("--rounds needs a number")?
            }
            "--quick" => a.quick = true,
            "--json" => a.json = Some(value(&mut it, &flag)?.into()),
            "--svg" => a.svg = Some(value(&mut it, &flag)?.into()),
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if all {
        a.workloads = Workload::ALL.to_vec();
    }
    if a.workloads.is_empty() {
        bail!("nothing to run: give --all or --workload NAME\n{USAGE}");
    }
    dedup(&mut a.workloads);
    if a.engines.is_empty() {
        a.engines = Kind::ALL.to_vec();
    }
    dedup(&mut a.engines);
    a.rounds = a.rounds.max(1);
    Ok(Some(a))
}

fn dedup<T: PartialEq + Copy>(items: &mut Vec<T>) {
    let mut seen = Vec::new();
    items.retain(|x| {
        let new = !seen.contains(x);
        seen.push(*x);
        new
    });
}

fn parse_child(args: Vec<String>) -> Result<ChildArgs> {
    let mut it = args.into_iter();
    let engine = Kind::parse(&value(&mut it, "--child")?)?;
    let workload = Workload::parse(&value(&mut it, "--child")?)?;
    let mut c = ChildArgs {
        engine,
        workload,
        build: None,
        fixture: None,
        quick: false,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--build" => c.build = Some(value(&mut it, &flag)?.into()),
            "--fixture" => c.fixture = Some(value(&mut it, &flag)?.into()),
            "--quick" => c.quick = true,
            other => bail!("unknown child argument {other:?}"),
        }
    }
    Ok(c)
}

fn temp_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("mmblob-compare-")
        .tempdir()?)
}

/// Copies the files of `src` (recursively) into the existing directory
/// `dst`; the child then runs `sync`, so the copy is at rest (clean) and in
/// the page cache. (One `sync` for all files: an `fsync` per file made
/// copying the 100,000 files of one-file-per-value take minutes.)
fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir(&to)?;
            copy_dir(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

fn child_main(c: ChildArgs) -> Result<()> {
    let sizes = Sizes::new(c.quick);
    let m = if let Some(dir) = &c.build {
        let fixture = c
            .workload
            .fixture()
            .context("this workload has no fixture to build")?;
        workloads::build_fixture(c.engine, fixture, &sizes, dir)?
    } else {
        let dir = temp_dir()?;
        if let Some(fixture) = &c.fixture {
            copy_dir(fixture, dir.path()).context("copying the fixture")?;
        }
        // Write back what earlier children (and the copy) left dirty, so no
        // engine is throttled by another's backlog of dirty pages.
        Command::new("sync").status().context("running sync")?;
        let m = workloads::run(c.engine, c.workload, &sizes, dir.path())?;
        // Print before the directory is removed, which for a hundred
        // thousand files can take minutes on a disk that discards freed
        // blocks synchronously; the parent waits for the exit either way.
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Runs one child and parses the JSON line it prints.
fn spawn_child(
    engine: Kind,
    workload: Workload,
    quick: bool,
    extra: &[&std::ffi::OsStr],
) -> Result<Measurement> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child", engine.name(), workload.name()])
        .args(extra);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!(
            "child {} {} exited with {}",
            engine.name(),
            workload.name(),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("child printed no result")?;
    Ok(serde_json::from_str(line)?)
}

/// Fixture directories built so far, by engine and fixture (or why building failed).
type Fixtures = HashMap<(Kind, Fixture), std::result::Result<tempfile::TempDir, String>>;

/// Builds the fixture `workload` reads for each engine, in a child each, unless already built.
fn build_fixtures(a: &Args, workload: Workload, fixtures: &mut Fixtures, started: Instant) {
    let Some(fixture) = workload.fixture() else {
        return;
    };
    for &engine in a.engines.iter().filter(|&&e| workload.applies(e)) {
        if fixtures.contains_key(&(engine, fixture)) {
            continue;
        }
        let built = temp_dir().map_err(|e| format!("{e:#}")).and_then(|dir| {
            let arg = [OsStr::new("--build"), dir.path().as_os_str()];
            let m = spawn_child(engine, workload, a.quick, &arg)
                .map_err(|e| format!("building {fixture:?}: {e:#}"))?;
            eprintln!(
                "[{:>6.1}s] built {fixture:?} fixture for {}: {}",
                started.elapsed().as_secs_f64(),
                engine.name(),
                summary(&m)
            );
            Ok(dir)
        });
        fixtures.insert((engine, fixture), built);
    }
}

/// One measurement, starting from a copy of the workload's fixture if it has one.
fn measure(
    engine: Kind,
    workload: Workload,
    quick: bool,
    fixtures: &Fixtures,
) -> Result<Measurement> {
    let Some(fixture) = workload.fixture() else {
        return spawn_child(engine, workload, quick, &[]);
    };
    match fixtures.get(&(engine, fixture)) {
        Some(Ok(dir)) => spawn_child(
            engine,
            workload,
            quick,
            &[OsStr::new("--fixture"), dir.path().as_os_str()],
        ),
        Some(Err(e)) => bail!("{e}"),
        None => bail!("fixture {fixture:?} was not built"),
    }
}

fn summary(m: &Measurement) -> String {
    match m.metrics.first() {
        Some(x) => match x.value {
            Some(v) => format!("{} {}", report::human(v), x.name),
            None => "n/a".into(),
        },
        None => "no metrics".into(),
    }
}

fn rounds_of(w: Workload, rounds: usize) -> usize {
    if w == Workload::Memory { 1 } else { rounds }
}

/// Runs every (workload, round, engine) child, engines interleaved within each round.
fn run_all(a: &Args, started: Instant) -> Vec<Sample> {
    let total: usize = a
        .workloads
        .iter()
        .map(|&w| rounds_of(w, a.rounds) * a.engines.iter().filter(|&&e| w.applies(e)).count())
        .sum();
    let mut samples = Vec::new();
    let mut fixtures = Fixtures::new();
    for &w in &a.workloads {
        build_fixtures(a, w, &mut fixtures, started);
        let rounds = rounds_of(w, a.rounds);
        for round in 0..rounds {
            let mut order: Vec<Kind> = a
                .engines
                .iter()
                .copied()
                .filter(|&e| w.applies(e))
                .collect();
            if order.is_empty() {
                continue;
            }
            let shift = round % order.len();
            order.rotate_left(shift);
            for engine in order {
                let result = measure(engine, w, a.quick, &fixtures).map_err(|e| format!("{e:#}"));
                let shown = match &result {
                    Ok(m) => summary(m),
                    Err(e) => format!("FAILED: {e}"),
                };
                eprintln!(
                    "[{:>3}/{total} {:>6.1}s] {} round {}/{rounds} {}: {shown}",
                    samples.len() + 1,
                    started.elapsed().as_secs_f64(),
                    w.name(),
                    round + 1,
                    engine.name(),
                );
                samples.push(Sample {
                    workload: w,
                    engine,
                    result,
                });
            }
        }
    }
    samples
}

fn parent_main(a: Args) -> Result<()> {
    let started = Instant::now();
    let machine = Machine::detect();
    let sizes = Sizes::new(a.quick);
    eprintln!("machine: {machine}");
    eprintln!("temp dir: {}", std::env::temp_dir().display());
    let samples = run_all(&a, started);
    let rows = report::aggregate(&samples, &a.workloads, &a.engines);
    let notes = report::notes(&samples);
    let errors: Vec<String> = samples
        .iter()
        .filter_map(|s| {
            s.result
                .as_ref()
                .err()
                .map(|e| format!("{} {}: {e}", s.workload.name(), s.engine.name()))
        })
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let mode = if a.quick { "quick sizes" } else { "full sizes" };
    println!("machine: {machine}");
    println!(
        "{mode}, {} rounds, medians; ratio = engine ÷ mmblob (↑ higher is better, ↓ lower is better)",
        a.rounds
    );
    println!();
    print!("{}", report::table(&rows, &a.engines));
    if !notes.is_empty() {
        println!("\nnotes:");
        notes.iter().for_each(|n| println!("  {n}"));
    }
    if !errors.is_empty() {
        println!("\nerrors:");
        errors.iter().for_each(|e| println!("  {e}"));
    }
    println!("\ntotal {elapsed:.0} s");
    if let Some(path) = &a.json {
        let r = Report {
            machine: &machine,
            quick: a.quick,
            rounds: a.rounds,
            sizes: &sizes,
            elapsed_s: elapsed,
            rows: &rows,
            notes: &notes,
            errors: &errors,
        };
        report::write_json(path, &r)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.svg {
        let title = format!("mmblob vs peers ({mode}) — {machine}");
        chart::write_svg(path, &rows, &a.engines, &title)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child_main(parse_child(args.into_iter().skip(1).collect())?);
    }
    match parse_args(args)? {
        Some(a) => parent_main(a),
        None => {
            print!("{USAGE}");
            Ok(())
        }
    }
}
