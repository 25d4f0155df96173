//! # tradeflow-ingestor
//!
//! `tradeflow ingestor` tails the trade logs into Kafka: every complete line of every client's
//! file is parsed and published to `trades` (key = client id) with its identity (SPEC §2); bad
//! lines go to `trades.dlq` with their raw bytes and the reason.
//!
//! **Delivery guarantee: at least once, with identities.** A per-file cursor records the offset up
//! to which the broker has acknowledged every line; it is saved (temp file, fsync, rename) only
//! after the acknowledgement, so a crash can re-send lines after the cursor but never skip one.
//! A re-sent line carries the same identity (client, file date, generation, offset) as its
//! original, so the aggregator drops it.
//!
//! - [`discovery`]: finds files (inotify, rescans) and runs a [`tail`] task per file.
//! - [`log_file`]: one file's cursor, reader and acknowledgement window; publishing its lines.
//! - [`line_reader`]: the edge contract's framing (docs/edge.md), incremental: complete lines only,
//!   a BOM skipped, NUL runs reported, over-long lines refused in bounded memory, and each piece
//!   with the CRC-32 of the file up to its end (the cursor's proof).
//! - [`ack_window`]: acknowledgements → the offset the cursor may move to.
//! - [`cursor`]: the durable cursor store.
//! - [`publisher`]: the idempotent Kafka producer and its delivery reports.
//! - [`topic_handle`]: the trades topic's librdkafka handle and the raw produce call on it.
//! - [`backfill`]: republish whole historical files and exit.
//! - [`dead_letters`]: `tradeflow dlq`: list, show and re-drive dead letters.
//! - [`metrics`]: `/metrics` and `/healthz`.
//! - [`error`]: what can stop the ingestor.

pub mod ack_window;
pub mod backfill;
pub mod config;
pub mod cursor;
pub mod dead_letters;
pub mod discovery;
pub mod error;
pub mod line_reader;
pub mod log_file;
pub mod metrics;
pub mod publisher;
pub mod tail;
pub mod topic_handle;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use config::IngestorArgs;
pub use error::IngestError;

use crate::cursor::CursorStore;
use crate::log_file::Shared;

/// The last flush at shutdown, after the readers drained (`--drain-secs`): with the default drain
/// the ingestor exits within `docker compose stop`'s 10 s grace even with the broker down.
const FINAL_FLUSH: Duration = Duration::from_secs(2);
use crate::metrics::Metrics;
use crate::publisher::{Publisher, PublisherConfig};

/// Runs the ingestor (or the backfill, with `--backfill`) until `shutdown`.
pub async fn run(config: IngestorArgs, shutdown: CancellationToken) -> Result<(), IngestError> {
    let mapping = config.mapping.load()?;
    tracing::info!(mapping = %mapping.origin, sources = mapping.sources.len(), builtin = mapping.is_builtin(), "mapping checked");
    let metrics = Arc::new(Metrics::default());
    let publisher = Publisher::new(
        &config.kafka,
        &PublisherConfig {
            linger_ms: config.linger_ms,
            queue_kb: config.queue_kb,
            compression: config.compression.clone(),
        },
        &config.topics.topics(),
        metrics.clone(),
        shutdown.clone(),
    )?;
    let shared = Arc::new(Shared {
        publisher,
        metrics: metrics.clone(),
        topics: config.topics.topics(),
        store: CursorStore::open(&config.state_dir)?,
        max_line_bytes: tradeflow_core::edge::MAX_LINE_BYTES,
        mapping,
        readers: Default::default(),
        drain: Duration::from_secs(config.drain_secs),
    });
    let warm = shared.clone();
    tokio::task::spawn_blocking(move || warm.publisher.warm_up(Duration::from_secs(2)))
        .await
        .map_err(|e| IngestError::Task(format!("producer warm-up: {e}")))?;
    if config.backfill {
        let report = backfill::run(&config, &shared, &shutdown).await?;
        tracing::info!(?report, "backfill done");
        return Ok(());
    }
    let addr = metrics::serve(config.metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .map_err(|source| IngestError::Metrics { addr: config.metrics_addr, source })?;
    tracing::info!(dir = %config.dir.display(), state = %config.state_dir.display(), metrics = %addr, "ingestor running");
    let result = discovery::run(&config, shared.clone(), shutdown.clone()).await;
    // Each file's reader has waited for its lines' acknowledgements already (`--drain-secs`): this
    // is for what is left (dead letters of a reader that stopped early), not a second long wait.
    let flushed = shared.publisher.flush(FINAL_FLUSH);
    shutdown.cancel();
    result?;
    flushed?;
    tracing::info!(
        lines_read = metrics.lines_read.load(std::sync::atomic::Ordering::Relaxed),
        lines_published = metrics.lines_published.load(std::sync::atomic::Ordering::Relaxed),
        dead_lettered = metrics.dead_lettered_total(),
        "ingestor stopped"
    );
    Ok(())
}
