//! The live loop of one file: read what is new, publish it, persist the cursor as the broker
//! acknowledges, start a new generation when the file is truncated or replaced.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tradeflow_core::log_format::LogFileName;

use crate::error::IngestError;
use crate::log_file::{LogFile, Shared};

/// How long shutdown waits for in-flight lines before persisting what was acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Persist the cursor at least this often while lines are being acknowledged.
const PERSIST_EVERY: Duration = Duration::from_millis(100);

pub async fn tail(
    name: LogFileName,
    path: PathBuf,
    source: usize,
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    poll: Duration,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let mut file = loop {
        if let Some(f) = LogFile::open(name.clone(), path.clone(), source, &shared)? {
            break f;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    };
    // Readable (again): no longer reported as unreadable.
    shared.metrics.set_unreadable(&name.to_string(), None);
    let mut last_persist = Instant::now();
    while !shutdown.is_cancelled() {
        if let Some(why) = file.replaced()? {
            file = file.reset(why, &shared).await?;
        }
        // Read everything up to the size `replaced` saw (yielding between chunks, persisting as
        // acks arrive). Bytes appended since then notify the wake-up again (or the poll finds
        // them): no second `fstat` and empty read per wake-up to learn that nothing more came.
        loop {
            file.pump_seen(&shared).await?;
            if file.read_to_seen() {
                break;
            }
            if last_persist.elapsed() >= PERSIST_EVERY {
                file.persist(&shared)?;
                last_persist = Instant::now();
            }
            if shutdown.is_cancelled() {
                break;
            }
            tokio::task::yield_now().await;
        }
        // Cursor writes (fsync + rename) at most every PERSIST_EVERY: a live file wakes the
        // reader on every append, and syncing on each wake cost a core at 10 k lines/s.
        if last_persist.elapsed() >= PERSIST_EVERY {
            file.persist(&shared)?;
            last_persist = Instant::now();
        }
        if file.stale() {
            continue; // rewritten under the last read: a new generation at once
        }
        // While lines are unacknowledged or unsaved, wake when the next cursor write is due.
        // Acknowledgements themselves do not wake the loop: each batch the broker acknowledges
        // cost a whole wake-up (the checks and reads above) per file, every linger. A delivery
        // failure is seen at that next wake-up too (`persist`, `pump`).
        let pending = file.window.in_flight() > 0 || file.unpersisted();
        let until_persist = PERSIST_EVERY.saturating_sub(last_persist.elapsed()).max(Duration::from_millis(1));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(if pending { until_persist } else { poll }) => {}
        }
    }
    // Shutdown: let the producer deliver what is in flight, then persist what was acknowledged.
    match tokio::time::timeout(DRAIN_TIMEOUT, file.window.drained()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(file = %name, error = %e, "delivery failed during shutdown"),
        Err(_) => {
            tracing::warn!(file = %name, in_flight = file.window.in_flight(), "shutdown before the broker acknowledged every line")
        }
    }
    file.persist(&shared)?;
    tracing::info!(file = %name, offset = file.cursor.offset, generation = file.cursor.generation, "cursor saved");
    Ok(())
}
