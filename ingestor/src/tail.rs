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

/// Persist the cursor at least this often while lines are being acknowledged…
const PERSIST_EVERY: Duration = Duration::from_millis(100);
/// …and no more often than this times the number of live readers: the ingestor's cursor writes
/// (two fsyncs each) stay near 100 a second however many files are live — a thousand live files
/// save each cursor every 10 s. A crash re-sends at most that much of a file, under the same
/// identities (SPEC §2), so it is counted once downstream.
const PERSIST_SPREAD: Duration = Duration::from_millis(10);

/// The interval between one file's cursor writes with `readers` live readers.
fn persist_every(readers: usize) -> Duration {
    PERSIST_EVERY.max(PERSIST_SPREAD * u32::try_from(readers).unwrap_or(u32::MAX))
}

/// Counts a live reader while it lives.
struct Live<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Live<'a> {
    fn new(readers: &'a std::sync::atomic::AtomicUsize) -> Self {
        readers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(readers)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

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
    let _live = Live::new(&shared.readers);
    let every = || persist_every(shared.readers.load(std::sync::atomic::Ordering::Relaxed));
    let mut last_persist = Instant::now();
    while !shutdown.is_cancelled() {
        if let Some(why) = file.replaced()? {
            file = file.reset(why, &shared).await?;
        }
        // Read everything up to the size `replaced` saw (yielding between chunks, persisting as
        // acks arrive). Bytes appended since then notify the wake-up again (or the poll finds
        // them): no second `fstat` and empty read per wake-up to learn that nothing more came.
        loop {
            match file.pump_seen(&shared).await {
                Ok(_) => {}
                // Shutdown while the producer's queue was full: drain and save what was acknowledged.
                Err(IngestError::Stopped) => break,
                Err(e) => return Err(e),
            }
            if file.read_to_seen() {
                break;
            }
            if last_persist.elapsed() >= every() {
                file.persist_in_background(&shared).await?;
                last_persist = Instant::now();
            }
            if shutdown.is_cancelled() {
                break;
            }
            tokio::task::yield_now().await;
        }
        // Cursor writes (fsync + rename) at most every `persist_every`, off the runtime: a live
        // file wakes the reader on every append, and syncing on each wake cost a core at 10 k
        // lines/s.
        if last_persist.elapsed() >= every() {
            file.persist_in_background(&shared).await?;
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
        let until_persist = every().saturating_sub(last_persist.elapsed()).max(Duration::from_millis(1));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(if pending { until_persist } else { poll }) => {}
        }
    }
    // Shutdown: let the producer deliver what is in flight, then persist what was acknowledged.
    match tokio::time::timeout(shared.drain, file.window.drained()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(file = %name, error = %e, "delivery failed during shutdown"),
        Err(_) => {
            tracing::warn!(file = %name, in_flight = file.window.in_flight(), "shutdown before the broker acknowledged every line")
        }
    }
    file.persist(&shared).await?;
    tracing::info!(file = %name, offset = file.cursor.offset, generation = file.cursor.generation, "cursor saved");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_writes_are_spread_over_the_live_readers() {
        assert_eq!(persist_every(0), PERSIST_EVERY);
        assert_eq!(persist_every(10), PERSIST_EVERY);
        assert_eq!(persist_every(1000), Duration::from_secs(10));
        let readers = std::sync::atomic::AtomicUsize::new(0);
        {
            let _a = Live::new(&readers);
            let _b = Live::new(&readers);
            assert_eq!(readers.load(std::sync::atomic::Ordering::Relaxed), 2);
        }
        assert_eq!(readers.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}
