//! Finding the log files: a directory scan at start, on every file-system notification (inotify
//! through `notify`), and on a safety interval; without notifications, a 10 ms poll.
//!
//! **Files are one file's problem.** A file that cannot be opened or read (a directory or FIFO
//! named like a log file, no permission, an I/O error) stops its own reader only: it is logged,
//! counted (`tradeflow_ingestor_file_errors_total`, `tradeflow_ingestor_unreadable_files`) and
//! tried again after a backoff (1 s, doubling to 60 s); every other file keeps flowing. What is
//! not a file's problem (the broker refusing a record, the cursor store failing) still stops the
//! ingestor, as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tradeflow_core::mapping::{FoundFile, Mapping};

use crate::config::IngestorArgs;
use crate::error::IngestError;
use crate::log_file::Shared;

/// Poll interval when file notifications are unavailable.
const FALLBACK_POLL: Duration = Duration::from_millis(10);
/// First wait before a file that could not be read is tried again; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// A file that failed: when to try it again, and the wait after that.
struct Retry {
    at: Instant,
    next_wait: Duration,
}

type Wakers = Arc<Mutex<HashMap<PathBuf, Arc<Notify>>>>;

pub async fn run(config: &IngestorArgs, shared: Arc<Shared>, shutdown: CancellationToken) -> Result<(), IngestError> {
    // Every source's directory (the mapping's `dir`, else --dir), each watched.
    let mut dirs = Vec::new();
    for configured in shared.mapping.dirs(&config.dir) {
        let io = |source| IngestError::Io { path: configured.clone(), source };
        std::fs::create_dir_all(&configured).map_err(io)?;
        dirs.push((configured.canonicalize().map_err(io)?, configured));
    }
    let wakers: Wakers = Arc::default();
    let dir_wake = Arc::new(Notify::new());
    let watchers: Vec<_> = dirs.iter().map(|(dir, _)| watch(dir, wakers.clone(), dir_wake.clone())).collect();
    let poll =
        if watchers.iter().all(Option::is_some) { Duration::from_millis(config.poll_ms.max(1)) } else { FALLBACK_POLL };
    let mut tails = JoinSet::new();
    let mut retries: HashMap<PathBuf, Retry> = HashMap::new();
    let mut result = Ok(());
    loop {
        let mut found = Vec::new();
        for (dir, configured) in &dirs {
            found.extend(
                scan(&shared.mapping, dir, configured, &config.dir)
                    .map_err(|source| IngestError::Io { path: dir.clone(), source })?,
            );
        }
        for FoundFile { name, path, source } in found {
            if !config.wants(&name.client) || retries.get(&path).is_some_and(|r| r.at > Instant::now()) {
                continue;
            }
            let mut map = wakers.lock().unwrap_or_else(|e| e.into_inner());
            if map.contains_key(&path) {
                continue;
            }
            let wake = Arc::new(Notify::new());
            map.insert(path.clone(), wake.clone());
            drop(map);
            tracing::info!(file = %name, "discovered");
            let task = crate::tail::tail(name, path.clone(), source, shared.clone(), wake, poll, shutdown.clone());
            tails.spawn(async move { (path, task.await) });
        }
        let now = Instant::now();
        let next_retry = retries.values().map(|r| r.at).filter(|at| *at > now).min();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = dir_wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = sleep_until(next_retry) => {}
            Some(done) = tails.join_next() => {
                let (path, failed) = match done {
                    Ok((path, Ok(()))) => (Some(path), None),
                    Ok((path, Err(e))) => (Some(path), Some(e)),
                    Err(e) => (None, Some(IngestError::Task(e.to_string()))),
                };
                if let Some(path) = &path {
                    wakers.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
                }
                match (path, failed) {
                    (Some(path), None) => {
                        retries.remove(&path);
                        shared.metrics.set_unreadable(&file_label(&path), None);
                    }
                    (Some(path), Some(e @ IngestError::Io { .. })) => {
                        let retry = retries.entry(path.clone()).or_insert(Retry { at: Instant::now(), next_wait: FIRST_RETRY });
                        let wait = retry.next_wait;
                        (retry.at, retry.next_wait) = (Instant::now() + wait, (wait * 2).min(MAX_RETRY));
                        tracing::error!(file = %path.display(), error = %e, retry_in = ?wait,
                            "cannot read this file; the others go on, it is tried again");
                        shared.metrics.set_unreadable(&file_label(&path), Some(e.to_string()));
                    }
                    (_, Some(e)) => {
                        tracing::error!(error = %e, "a file reader failed; stopping");
                        result = Err(e);
                        shutdown.cancel();
                        break;
                    }
                    (None, None) => {}
                }
            }
        }
    }
    while let Some(done) = tails.join_next().await {
        match done.map(|(_, r)| r) {
            Ok(Ok(())) | Ok(Err(IngestError::Io { .. })) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "file reader failed during shutdown");
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Err(e) => tracing::error!(error = %e, "file reader task failed"),
        }
    }
    drop(watchers);
    result
}

/// Sleeps until `at`, or for ever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A file's name for metrics and logs.
fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The trade log files in `dir` (configured as `configured`) owned by the sources that live
/// there: a source's `dir`, or `default_dir` for a source without one.
pub fn scan(mapping: &Mapping, dir: &Path, configured: &Path, default_dir: &Path) -> std::io::Result<Vec<FoundFile>> {
    mapping.log_files(dir, |s| s.dir.as_deref().unwrap_or(default_dir) == configured)
}

fn watch(dir: &Path, wakers: Wakers, dir_wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| match event {
        // Opens, reads and closes change nothing — and our own readers (and the directory scan)
        // cause them: waking on them would make every reader wake itself in a loop.
        Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
        Ok(event) => {
            let map = wakers.lock().unwrap_or_else(|e| e.into_inner());
            for path in &event.paths {
                match map.get(path) {
                    Some(wake) => wake.notify_one(),
                    None => dir_wake.notify_one(),
                }
            }
            // Creations and renames may also replace a known file: let discovery and it look.
            if matches!(event.kind, notify::EventKind::Create(_) | notify::EventKind::Remove(_)) {
                dir_wake.notify_one();
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "file notification error; rescanning");
            dir_wake.notify_one();
        }
    };
    match notify::recommended_watcher(handler).and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w)) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "file notifications unavailable; polling every {FALLBACK_POLL:?}");
            None
        }
    }
}
