//! `mmblob follow URL DEST`: keep a local replica current until stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args as ClapArgs;
use mmblob_remote::{Follower, PullStats};

use crate::cli::commands::pull::{PullJson, describe};
use crate::cli::commands::remote;
use crate::cli::error::CliResult;
use crate::cli::output::Out;

/// Arguments of `mmblob follow`.
#[derive(Debug, ClapArgs)]
pub struct FollowArgs {
    /// Where to follow: s3://BUCKET/PREFIX or file:///DIR
    #[arg(long_help = remote::URL_HELP)]
    pub url: String,
    /// The replica to keep current (an ordinary store; open it read-only)
    pub dest: PathBuf,
    /// Milliseconds between pulls
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    pub interval_ms: u64,
}

/// Runs `follow`: pulls on an interval until Ctrl-C, one line (or one-line
/// JSON object) per pull that brought new bytes; failed pulls are reported on
/// stderr and retried.
pub fn run(args: &FollowArgs, json: bool) -> CliResult {
    let source = remote::open(&args.url)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Another handler may already be installed (never in this binary).
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    let report = move |outcome: &mmblob_remote::Result<PullStats>| {
        let mut out = Out::new();
        let printed = match outcome {
            Ok(stats) if stats.downloaded_bytes > 0 || stats.replaced => {
                if json {
                    // One object per line, so a script can read them as they come.
                    out.line(serde_json::to_string(&PullJson::from(stats)).unwrap_or_default())
                } else {
                    out.line(describe(stats))
                }
            }
            Ok(_) => Ok(()),
            Err(err) => {
                eprintln!("error: {err} (retrying)");
                Ok(())
            }
        };
        let _ = printed.and_then(|()| out.flush());
    };
    let follower = Follower::builder(Arc::clone(&source.store), source.prefix.clone(), &args.dest)
        .interval(Duration::from_millis(args.interval_ms))
        .on_result(report)
        .start()
        .map_err(|e| remote::error(&args.dest, e))?;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    follower.stop();
    Ok(())
}
