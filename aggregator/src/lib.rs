//! # tradeflow-aggregator
//!
//! `tradeflow aggregator` is a Kafka consumer group over `trades` that keeps the SPEC §3 summary
//! rows per partition, snapshots them to Postgres every `--snapshot-interval-ms` — changed rows,
//! their history, the dedupe marks and the partition's next offset in **one transaction**, fenced
//! on the owner's epoch — and publishes every changed row to `summaries`.
//!
//! Postgres is the source of truth for progress: on assignment a partition's rows, dedupe marks
//! and next offset are loaded and consumption starts exactly there; Kafka's committed offsets are
//! not used. A crash loses at most the work since the last snapshot, which is consumed again; a
//! re-sent trade line is dropped by its identity. So every trade counts exactly once.
//!
//! - [`state`]: one partition's rows and dedupe marks.
//! - [`redrive`]: the dedupe rule for re-driven dead letters (a persisted set per partition).
//! - [`store`]: load (taking ownership) and the fenced snapshot transaction.
//! - [`engine`]: the consumer thread, rebalance handling, changelog, snapshot timer. A periodic
//!   snapshot copies what changed (a consistent cut) and commits it on a task, so the consumer
//!   thread never waits on Postgres except on a rebalance and at shutdown; a stop takes the final
//!   snapshot first and ends within `--shutdown-secs`, also with the broker down.
//! - [`offset_check`]: stored offsets that do not belong to the `trades` log (a recreated topic)
//!   stop the partition loudly instead of being reset silently.
//! - [`refused`]: records and rows the aggregator refuses, set aside on `trades.refused` (the
//!   partition goes on).
//! - [`bars`]: the bar writer — minute price bars from `prices` into `price_bars`, with the
//!   prices offsets in one transaction (each tick once).
//! - [`marks`]: the latest price per symbol from `prices` (ticks checked by `PriceTick::check`).
//! - [`changelog`]: the `summaries` record.
//! - [`history`]: history partitions ahead, and retention (`--history-days`).
//! - [`verify`]: Postgres against the oracle; [`holdings`]: the view `holdings` against the oracle's;
//!   [`day_pnl`]: its day P&L against the oracle's at the stored marks and bars;
//!   [`fill_bars`]: `fill_bars` (written with the rows: [`state`], [`store`]) against the oracle's.

pub mod backfill;
mod backfill_refusals;
pub mod bars;
pub mod changelog;
pub mod config;
pub mod day_pnl;
pub mod engine;
pub mod fill_bars;
pub mod history;
pub mod holdings;
pub mod marks;
pub mod metrics;
pub mod offset_check;
pub mod redrive;
pub mod refusal;
pub mod refused;
pub mod state;
pub mod store;
pub mod verify;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::BaseProducer;
use tokio_util::sync::CancellationToken;

pub use config::AggregatorArgs;

use crate::engine::{Engine, EngineContext};
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("invalid arguments: {0}")]
    Invalid(String),
    #[error("cannot serve metrics on {addr} (--metrics-addr, TRADEFLOW_AGGREGATOR_METRICS_ADDR): {source}")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("the consumer thread failed: {0}")]
    Thread(String),
    #[error(
        "partition {partition}: more than {max_mib} MiB of refused records (undecodable or unappliable) to set aside in one backfill; nothing written. Run the live aggregator first: it sets them aside as it reads, and the backfill then leaves them (they lie below the stored offset)"
    )]
    TooManyRefused { partition: i32, max_mib: usize },
    #[error("cannot read --database-password-file: {0}")]
    PasswordFile(std::io::Error),
    /// A fatal consumer error (fenced, unrecoverable), or a stop without its final snapshot.
    #[error("the aggregator's consumer stopped with an error: {0}")]
    Consumer(String),
}

pub async fn run(config: AggregatorArgs, shutdown: CancellationToken) -> Result<(), AggregateError> {
    let topics = config.topics.topics();
    let url = config.database.url().map_err(AggregateError::PasswordFile)?;
    let store = Store::connect(&url, &topics.trades).await?;
    tokio::spawn(history::keep_up(store.pool.clone(), config.retention.clone(), shutdown.clone()));
    let metrics = Arc::new(Metrics::default());
    let marks_group = format!("{}-marks-{}", config.group_id, std::process::id());
    let (marks, marks_task) =
        marks::follow(&config.kafka, &topics.prices, &marks_group, metrics.clone(), shutdown.clone())?;
    let bars_group = format!("{}-bars", config.group_id);
    let flush = Duration::from_millis(config.bars_flush_ms.max(10));
    let pool = store.pool.clone();
    let bars_task =
        bars::spawn(&config.kafka, &topics.prices, &bars_group, flush, pool, metrics.clone(), shutdown.clone())?;
    let engine = Arc::new(Engine {
        store,
        handle: tokio::runtime::Handle::current(),
        owned: Mutex::default(),
        marks,
        metrics: metrics.clone(),
        refused: refused::RefusedSink::new(&config.kafka, &topics.trades_refused, &topics.trades, metrics.clone())?,
        trades_topic: topics.trades.clone(),
        shutdown: shutdown.clone(),
        in_flight: Mutex::default(),
        reload: Mutex::default(),
        republish: Mutex::default(),
        mismatched: Mutex::default(),
        offsets_client: offset_check::LogOffsets::new(&config.kafka)?,
        stop_budget: Duration::from_secs(config.shutdown_secs),
        stop_by: std::sync::OnceLock::new(),
        stopped: std::sync::atomic::AtomicBool::new(false),
    });
    // The stop's time (--shutdown-secs) runs from the signal.
    tokio::spawn({
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            engine.stop_deadline();
        }
    });
    let mut consumer_config = config.kafka.consumer_config();
    if let Some(id) = &config.instance_id {
        consumer_config.set("group.instance.id", id);
    }
    let consumer: BaseConsumer<EngineContext> = consumer_config
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (config.session_timeout_ms / 5).max(100).to_string())
        .set("partition.assignment.strategy", "range")
        .create_with_context(EngineContext(engine.clone()))?;
    consumer.subscribe(&[&topics.trades])?;
    let changelog: BaseProducer = config
        .kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", config.changelog_linger_ms.to_string())
        .set("compression.type", &config.changelog_compression)
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "0")
        .create()?;
    let render = {
        let metrics = metrics.clone();
        move |path: &str| match path {
            "/metrics" => Some((200, metrics.render())),
            "/healthz" => Some((200, "ok\n".to_owned())),
            "/readyz" => Some(match metrics.readiness() {
                Ok(()) => (200, "ready\n".to_owned()),
                Err(reasons) => (503, reasons),
            }),
            _ => None,
        }
    };
    let addr = config.metrics_addr;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| AggregateError::Metrics { addr, source })?;
    tracing::info!(
        metrics = %listener.local_addr().map_err(|source| AggregateError::Metrics { addr, source })?,
        group = %config.group_id,
        instance = config.instance_id.as_deref().unwrap_or("(dynamic)"),
        "aggregator running"
    );
    tokio::spawn(tradeflow_core::http::serve_get_with_status(listener, render, shutdown.clone()));
    let interval = Duration::from_millis(config.snapshot_interval_ms.max(10));
    let summaries = topics.summaries.clone();
    let thread_engine = engine.clone();
    let result =
        tokio::task::spawn_blocking(move || engine::run(thread_engine, consumer, changelog, summaries, interval)).await;
    shutdown.cancel();
    // The prices consumers close off the async workers meanwhile; they get what is left of the time.
    let closed = tokio::time::timeout(engine.stop_left(), async {
        let _ = tokio::join!(marks_task, bars_task);
    });
    if closed.await.is_err() {
        tracing::warn!("the prices consumers did not close within the stop's time (--shutdown-secs): left behind");
    }
    result.map_err(|e| AggregateError::Thread(e.to_string()))?.map_err(AggregateError::Consumer)
}
