//! Keeping copies current on an interval: [`Pusher`] on the writer's side,
//! [`Follower`] on each reader's.

use std::path::{Path as FsPath, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use mmblob_engine::{DataStore, OpenOptions};
use object_store::ObjectStore;
use tracing::{info, warn};

use crate::error::{RemoteError, Result};
use crate::pull::{PullOptions, PullStats, pull_async};
use crate::push::{PushOptions, PushStats, push_async};
use crate::remote::runtime;

/// A callback told of every push (or pull) and its outcome.
pub type OnResult<T> = Arc<dyn Fn(&Result<T>) + Send + Sync>;

enum Command<T> {
    Now(Sender<Result<T>>),
    Stop,
}

/// Runs [`push`](crate::push()) on an interval on a background thread, so
/// the remote copy lags the store by at most about one interval.
///
/// Every outcome goes to the callback given to [`Pusher::on_result`] and
/// to `tracing` (failures as `warn!`); a failed push is simply retried at
/// the next tick. [`Pusher::stop`] (or drop) ends the thread after one
/// last push, so everything written before it is shipped.
pub struct Pusher {
    commands: Sender<Command<PushStats>>,
    thread: Option<JoinHandle<Option<Result<PushStats>>>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher").finish_non_exhaustive()
    }
}

/// Builder of a [`Pusher`].
pub struct PusherBuilder {
    store: Arc<DataStore>,
    remote: Arc<dyn ObjectStore>,
    prefix: String,
    interval: Duration,
    options: PushOptions,
    on_result: Option<OnResult<PushStats>>,
}

impl Pusher {
    /// A pusher of `store` to `prefix` of `remote`, every second by default.
    pub fn builder(
        store: Arc<DataStore>,
        remote: Arc<dyn ObjectStore>,
        prefix: impl Into<String>,
    ) -> PusherBuilder {
        PusherBuilder {
            store,
            remote,
            prefix: prefix.into(),
            interval: Duration::from_secs(1),
            options: PushOptions::default(),
            on_result: None,
        }
    }

    /// Pushes now and waits for the outcome.
    ///
    /// # Errors
    /// The push's error, or [`RemoteError::WorkerGone`].
    pub fn push_now(&self) -> Result<PushStats> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Command::Now(tx))
            .map_err(|_| RemoteError::WorkerGone { what: "pusher" })?;
        rx.recv()
            .map_err(|_| RemoteError::WorkerGone { what: "pusher" })?
    }

    /// Pushes one last time and stops the thread; returns that push's outcome.
    ///
    /// # Errors
    /// The last push's error, or [`RemoteError::WorkerGone`].
    pub fn stop(mut self) -> Result<PushStats> {
        self.finish()
    }

    fn finish(&mut self) -> Result<PushStats> {
        let _ = self.commands.send(Command::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Some(last))) => last,
            _ => Err(RemoteError::WorkerGone { what: "pusher" }),
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish();
        }
    }
}

impl PusherBuilder {
    /// Time between pushes (default 1 s).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Options of each push.
    #[must_use]
    pub fn options(mut self, options: PushOptions) -> Self {
        self.options = options;
        self
    }

    /// Called after every push with its outcome.
    #[must_use]
    pub fn on_result(mut self, f: impl Fn(&Result<PushStats>) + Send + Sync + 'static) -> Self {
        self.on_result = Some(Arc::new(f));
        self
    }

    /// Starts the background thread; the first push runs at once.
    ///
    /// # Errors
    /// [`RemoteError::Io`] when the thread or its runtime cannot start.
    pub fn start(self) -> Result<Pusher> {
        let rt = runtime()?;
        let (tx, rx) = mpsc::channel::<Command<PushStats>>();
        let PusherBuilder {
            store,
            remote,
            prefix,
            interval,
            options,
            on_result,
        } = self;
        let thread = std::thread::Builder::new()
            .name("mmblob-pusher".into())
            .spawn(move || {
                let run = || {
                    let outcome =
                        rt.block_on(push_async(&store, remote.as_ref(), &prefix, &options));
                    match &outcome {
                        Ok(stats) if stats.uploaded_bytes > 0 => {
                            info!(uploaded = stats.uploaded_bytes, end = stats.end, "pushed");
                        }
                        Ok(_) => {}
                        Err(err) => {
                            warn!(error = %err, "push failed; retrying at the next interval")
                        }
                    }
                    if let Some(f) = &on_result {
                        f(&outcome);
                    }
                    outcome
                };
                let mut last = Some(run());
                loop {
                    match rx.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => last = Some(run()),
                        Ok(Command::Now(reply)) => {
                            let _ = reply.send(run());
                        }
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            return Some(run()).or(last);
                        }
                    }
                }
            })
            .map_err(|e| {
                RemoteError::io("starting the pusher thread for", PathBuf::from("push"), e)
            })?;
        Ok(Pusher {
            commands: tx,
            thread: Some(thread),
        })
    }
}

/// Keeps a local replica current: pulls on an interval on a background
/// thread and refreshes an open read-only [`DataStore`] of the replica, so
/// a reader on another machine sees every pushed entry, at most about one
/// push interval plus one pull interval after it was written.
pub struct Follower {
    store: Arc<Mutex<Arc<DataStore>>>,
    commands: Sender<Command<PullStats>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").finish_non_exhaustive()
    }
}

/// Builder of a [`Follower`].
pub struct FollowerBuilder {
    remote: Arc<dyn ObjectStore>,
    prefix: String,
    dest: PathBuf,
    interval: Duration,
    options: PullOptions,
    on_result: Option<OnResult<PullStats>>,
}

impl Follower {
    /// A follower of `prefix` of `remote` keeping the replica at `dest`,
    /// pulling every second by default.
    pub fn builder(
        remote: Arc<dyn ObjectStore>,
        prefix: impl Into<String>,
        dest: impl AsRef<FsPath>,
    ) -> FollowerBuilder {
        FollowerBuilder {
            remote,
            prefix: prefix.into(),
            dest: dest.as_ref().to_path_buf(),
            interval: Duration::from_secs(1),
            options: PullOptions::default(),
            on_result: None,
        }
    }

    /// The replica, open read-only and refreshed after every pull. Take it
    /// again now and then: it is the same handle unless a pull had to open
    /// the replica anew.
    #[must_use]
    pub fn store(&self) -> Arc<DataStore> {
        Arc::clone(&self.store.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Pulls now (and refreshes the store) and waits for the outcome.
    ///
    /// # Errors
    /// The pull's error, or [`RemoteError::WorkerGone`].
    pub fn pull_now(&self) -> Result<PullStats> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Command::Now(tx))
            .map_err(|_| RemoteError::WorkerGone { what: "follower" })?;
        rx.recv()
            .map_err(|_| RemoteError::WorkerGone { what: "follower" })?
    }

    /// Stops the background thread.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.finish();
    }
}

impl FollowerBuilder {
    /// Time between pulls (default 1 s).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Options of each pull.
    #[must_use]
    pub fn options(mut self, options: PullOptions) -> Self {
        self.options = options;
        self
    }

    /// Called after every pull with its outcome.
    #[must_use]
    pub fn on_result(mut self, f: impl Fn(&Result<PullStats>) + Send + Sync + 'static) -> Self {
        self.on_result = Some(Arc::new(f));
        self
    }

    /// Pulls once (so the replica exists), opens it read-only and starts
    /// the background thread.
    ///
    /// # Errors
    /// The first pull's error, or the error opening the replica.
    pub fn start(self) -> Result<Follower> {
        let rt = runtime()?;
        let FollowerBuilder {
            remote,
            prefix,
            dest,
            interval,
            options,
            on_result,
        } = self;
        let first = rt.block_on(pull_async(remote.as_ref(), &prefix, &dest, &options));
        if let Some(f) = &on_result {
            f(&first);
        }
        first?;
        let store = Arc::new(Mutex::new(Arc::new(open_replica(&dest)?)));
        let shared = Arc::clone(&store);
        let (tx, rx) = mpsc::channel::<Command<PullStats>>();
        let thread = std::thread::Builder::new()
            .name("mmblob-follower".into())
            .spawn(move || {
                let run = || {
                    let outcome = rt
                        .block_on(pull_async(remote.as_ref(), &prefix, &dest, &options))
                        .and_then(|stats| {
                            refresh(&shared, &dest)?;
                            Ok(stats)
                        });
                    match &outcome {
                        Ok(stats) if stats.downloaded_bytes > 0 => {
                            info!(
                                downloaded = stats.downloaded_bytes,
                                end = stats.end,
                                "pulled"
                            );
                        }
                        Ok(_) => {}
                        Err(err) => {
                            warn!(error = %err, "pull failed; retrying at the next interval")
                        }
                    }
                    if let Some(f) = &on_result {
                        f(&outcome);
                    }
                    outcome
                };
                loop {
                    match rx.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            let _ = run();
                        }
                        Ok(Command::Now(reply)) => {
                            let _ = reply.send(run());
                        }
                        Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|e| RemoteError::io("starting the follower thread for", PathBuf::new(), e))?;
        Ok(Follower {
            store,
            commands: tx,
            thread: Some(thread),
        })
    }
}

fn open_replica(dest: &FsPath) -> Result<DataStore> {
    Ok(OpenOptions::new()
        .read_only(true)
        .create(false)
        .open(dest)?)
}

/// Refreshes the shared replica handle (it follows a replaced file itself).
fn refresh(shared: &Mutex<Arc<DataStore>>, dest: &FsPath) -> Result<()> {
    let current = Arc::clone(&shared.lock().unwrap_or_else(PoisonError::into_inner));
    if current.refresh().is_err() {
        let fresh = Arc::new(open_replica(dest)?);
        *shared.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
    }
    Ok(())
}
