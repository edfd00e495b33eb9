//! Shared plumbing: prefixes, the manifest object, URLs, progress and the
//! blocking wrappers.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::error::{RemoteError, Result};
use crate::layout;
use crate::manifest::Manifest;

/// Progress of a transfer, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes transferred so far.
    pub done: u64,
    /// Bytes to transfer in all.
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A parsed remote: the object store and the prefix inside it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix the store copy lives under (may be empty).
    pub prefix: String,
}

/// Opens the object store a URL names.
///
/// * `s3://bucket/prefix`: S3 or any S3-compatible store. Credentials,
///   region and endpoint come from the usual environment variables
///   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
///   `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`,
///   `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint such as a local
///   cluster). A custom endpoint gets path-style requests.
/// * `file:///dir/prefix`: a directory on this machine (created if
///   missing); the prefix is empty and the directory holds the copy.
/// * `memory://`: a fresh in-memory store (tests).
///
/// Requests are retried 3 times within 30 s, and a connection attempt
/// gives up after 5 s, so an unreachable endpoint fails in seconds.
///
/// # Errors
/// [`RemoteError::InvalidUrl`] for an unknown scheme or a missing bucket.
pub fn open_url(url: &str) -> Result<Remote> {
    let invalid = |reason: &str| RemoteError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    match parsed.scheme() {
        "s3" | "s3a" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("no bucket: use s3://BUCKET/PREFIX"))?;
            let prefix = parsed.path().trim_matches('/').to_owned();
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(RetryConfig {
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(30),
                    ..RetryConfig::default()
                })
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(5))
                        .with_timeout(Duration::from_secs(120))
                        .with_allow_http(allow_http()),
                );
            if std::env::var_os("AWS_REGION").is_none()
                && let Some(region) = std::env::var_os("AWS_DEFAULT_REGION")
            {
                builder = builder.with_region(region.to_string_lossy());
            }
            let store = builder.build().map_err(|e| invalid(&e.to_string()))?;
            Ok(Remote {
                store: Arc::new(store),
                prefix,
            })
        }
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|()| invalid("not a local path: use file:///absolute/dir"))?;
            std::fs::create_dir_all(&dir).map_err(|e| RemoteError::io("creating", &dir, e))?;
            let store =
                LocalFileSystem::new_with_prefix(&dir).map_err(|e| invalid(&e.to_string()))?;
            Ok(Remote {
                store: Arc::new(store),
                prefix: String::new(),
            })
        }
        "memory" => Ok(Remote {
            store: Arc::new(InMemory::new()),
            prefix: parsed.path().trim_matches('/').to_owned(),
        }),
        other => Err(invalid(&format!(
            "unknown scheme {other:?}: use s3://bucket/prefix or file:///dir"
        ))),
    }
}

fn allow_http() -> bool {
    std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A prefix given as text, checked.
pub fn parse_prefix(prefix: &str) -> Result<Path> {
    Path::parse(prefix.trim_matches('/')).map_err(|e| RemoteError::InvalidUrl {
        url: prefix.to_owned(),
        reason: format!("bad prefix: {e}"),
    })
}

/// Reads and checks the manifest under `prefix`; `None` when there is none.
pub async fn read_manifest(remote: &dyn ObjectStore, prefix: &Path) -> Result<Option<Manifest>> {
    let location = layout::manifest(prefix);
    let bytes = match remote.get(&location).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|e| RemoteError::store("reading", &location, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(RemoteError::store("reading", &location, e)),
    };
    Manifest::decode(&bytes)
        .map(Some)
        .map_err(|reason| RemoteError::BadManifest {
            location: location.to_string(),
            reason,
        })
}

/// Runs `future` to completion on a runtime of its own.
pub fn block_on<T>(operation: &'static str, future: impl Future<Output = Result<T>>) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(RemoteError::InsideRuntime { operation });
    }
    runtime()?.block_on(future)
}

/// A runtime for blocking calls and background threads.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mmblob-remote")
        .enable_all()
        .build()
        .map_err(|e| {
            RemoteError::io(
                "starting the I/O runtime for",
                PathBuf::from("push/pull"),
                e,
            )
        })
}
