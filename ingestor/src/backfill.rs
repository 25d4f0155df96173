//! `--backfill --from D [--to D]`: republish whole historical files, then exit. Identities are the
//! live ones (the stored generation when the file is the one its cursor describes, else 0), so
//! re-publishing is harmless downstream. Cursors are not changed.
//!
//! Files are read concurrently, one reader per core (the live ingestor runs a task per file too):
//! parsing and encoding a line costs about as much as librdkafka's share of sending it, so one
//! reader left the second core to the broker and librdkafka's threads half idle.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::IngestorArgs;
use crate::discovery::scan;
use crate::error::IngestError;
use crate::log_file::{LogFile, Shared};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackfillReport {
    pub files: usize,
    pub lines: u64,
    pub bytes: u64,
}

/// Progress shared by the readers.
#[derive(Default)]
struct Progress {
    lines: AtomicU64,
    bytes: AtomicU64,
}

pub async fn run(
    config: &IngestorArgs,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
) -> Result<BackfillReport, IngestError> {
    let from = config.from.ok_or_else(|| IngestError::Config("--backfill needs --from".into()))?;
    let to = config.to.unwrap_or(from);
    if to < from {
        return Err(IngestError::Config(format!("--to {to} is before --from {from}")));
    }
    let mut files = Vec::new();
    for dir in shared.mapping.dirs(&config.dir) {
        let found = scan(&shared.mapping, &dir, &dir, &config.dir)
            .map_err(|source| IngestError::Io { path: dir.clone(), source })?;
        files.extend(found.into_iter().filter(|f| (from..=to).contains(&f.name.date) && config.wants(&f.name.client)));
    }
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(&f.path).ok()).map(|m| m.len()).sum();
    tracing::info!(files = files.len(), bytes = total, %from, %to, "backfill starting");
    // A directory, FIFO or device named like a log file is that file's problem alone (docs/edge.md):
    // every other file is published, then the backfill fails naming the ones it could not read.
    let mut opened = Vec::new();
    let mut skipped = Vec::new();
    for f in files {
        if !std::fs::metadata(&f.path).is_ok_and(|m| m.is_file()) {
            tracing::error!(file = %f.path.display(), "not a regular file (a directory, FIFO, socket or device?): skipped");
            shared.metrics.file_errors.fetch_add(1, Relaxed);
            skipped.push(f.path.display().to_string());
            continue;
        }
        if let Some(file) = LogFile::open_from_start(f.name, f.path, f.source, shared)? {
            opened.push(file);
        }
    }
    let report_files = opened.len();
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(opened.len().max(1));
    let queue = Arc::new(std::sync::Mutex::new(opened));
    let progress = Arc::new(Progress::default());
    let stop = shutdown.child_token();
    let mut tasks = JoinSet::new();
    for _ in 0..readers {
        let (queue, shared, progress, stop) = (queue.clone(), shared.clone(), progress.clone(), stop.clone());
        tasks.spawn(async move { read_files(&queue, &shared, &progress, &stop).await });
    }
    let outcome = report_progress(&mut tasks, &progress, total).await;
    stop.cancel(); // a failed reader stops the others
    while tasks.join_next().await.is_some() {}
    outcome?;
    if !skipped.is_empty() {
        return Err(IngestError::BackfillSkipped(skipped.join(", ")));
    }
    Ok(BackfillReport { files: report_files, lines: progress.lines.load(Relaxed), bytes: progress.bytes.load(Relaxed) })
}

/// Takes files off the queue and publishes each whole; then waits for their acknowledgements.
async fn read_files(
    queue: &std::sync::Mutex<Vec<LogFile>>,
    shared: &Shared,
    progress: &Progress,
    stop: &CancellationToken,
) -> Result<(), IngestError> {
    let mut done = Vec::new();
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(mut file) = next else { break };
        loop {
            if stop.is_cancelled() {
                return Err(IngestError::Config("backfill interrupted".into()));
            }
            let before = file.read_offset();
            let n = file.pump(shared).await?;
            if file.stale() {
                return Err(IngestError::RewrittenDuringBackfill(file.name.to_string()));
            }
            progress.lines.fetch_add(n as u64, Relaxed);
            progress.bytes.fetch_add(file.read_offset() - before, Relaxed);
            if n == 0 && file.caught_up() {
                break;
            }
        }
        done.push(file); // its acknowledgements are awaited once, after every file (no stall between files)
    }
    for file in &done {
        file.window.drained().await.map_err(IngestError::Delivery)?;
        tracing::info!(file = %file.name, generation = file.cursor.generation, "backfilled");
    }
    Ok(())
}

/// Shows progress (a bar on a terminal, a log line a second otherwise) until every reader ends;
/// the first reader's error.
async fn report_progress(
    tasks: &mut JoinSet<Result<(), IngestError>>,
    progress: &Progress,
    total: u64,
) -> Result<(), IngestError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut tick = tokio::time::interval(Duration::from_millis(if bar.is_some() { 100 } else { 1000 }));
    tick.tick().await;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(IngestError::Task(format!("backfill reader: {e}"))),
            },
            _ = tick.tick() => {
                let bytes = progress.bytes.load(Relaxed);
                match &bar {
                    Some(bar) => bar.set_position(bytes),
                    None => tracing::info!(lines = progress.lines.load(Relaxed), bytes, total, "backfill progress"),
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.set_position(progress.bytes.load(Relaxed));
        bar.finish();
    }
    Ok(())
}
