//! Finding the log files: a directory scan at start, on every file-system notification (inotify
//! through `notify`), and on a safety interval; without notifications, a 10 ms poll.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
            if !config.wants(&name.client) {
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
            let task = crate::tail::tail(name, path, source, shared.clone(), wake, poll, shutdown.clone());
            tails.spawn(task);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = dir_wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            Some(done) = tails.join_next() => {
                let failed = match done {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(e) => Some(IngestError::Task(e.to_string())),
                };
                if let Some(e) = failed {
                    tracing::error!(error = %e, "a file reader failed; stopping");
                    result = Err(e);
                    shutdown.cancel();
                    break;
                }
            }
        }
    }
    while let Some(done) = tails.join_next().await {
        match done {
            Ok(Ok(())) => {}
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
