//! The bar writer: minute price bars (OHLC, tick count) from `prices` into Postgres `price_bars`,
//! each tick counted exactly once.
//!
//! It consumes `prices` in its own consumer group (`<group-id>-bars`), so each prices partition has
//! one owner among the running aggregators. Every `--bars-flush-ms` (or [`MAX_BATCH`] records) the
//! batch is written in **one transaction**: the stored next offset of each of its partitions is
//! locked, records below it are skipped (already in the bars: a re-read after a crash, or a
//! partition's previous owner still flushing), the rest are folded with the shared rule
//! (`tradeflow_core::bars`) and merged into the stored bars, and the next offsets move on. Kafka's
//! committed offsets are only where a new owner starts reading; Postgres decides what counts.
//!
//! A tick refused by `PriceTick::check` (or undecodable) is logged with partition and offset,
//! counted (`tradeflow_aggregator_bar_ticks_refused_total`) and skipped — its offset still
//! advances, so it never stalls the partition; it stays on `prices`. A failed write is retried
//! with the same batch (consumption waits: memory stays bounded by one batch).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tradeflow_core::bars::{Bar, fold};
use tradeflow_core::kafka::{KafkaArgs, close_off_runtime};
use tradeflow_core::price::PriceTick;

use crate::metrics::Metrics;
use crate::store::StoreError;

/// Records per write at most (memory bound of the writer).
pub const MAX_BATCH: usize = 10_000;

/// One record read from `prices`: its place, and the tick if it passed the check.
#[derive(Clone, Debug)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub tick: Option<PriceTick>,
}

/// What one write did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Ticks folded into the stored bars.
    pub ticks: u64,
    /// Records skipped as already included (offset below the stored next offset).
    pub skipped: u64,
    /// Bars inserted or updated.
    pub bars: usize,
    /// The stored next offset of each partition of the batch, as found (before this write).
    pub stored: BTreeMap<i32, i64>,
}

/// Starts the bar writer (a task) until `shutdown`: its last batch written, the task ends once its
/// consumer is closed (off the async workers: [`close_off_runtime`]).
pub fn spawn(
    kafka: &KafkaArgs,
    topic: &str,
    group: &str,
    flush: Duration,
    pool: PgPool,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, rdkafka::error::KafkaError> {
    let consumer: StreamConsumer = kafka
        .consumer_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let topic = topic.to_owned();
    Ok(tokio::spawn(async move {
        let mut dated: HashSet<NaiveDate> = HashSet::new();
        loop {
            let batch = read_batch(&consumer, flush, &metrics, &shutdown).await;
            if !batch.is_empty() {
                if let Some(done) = write_until_done(&pool, &topic, &batch, &mut dated, &metrics, &shutdown).await
                    && done.skipped > 0
                {
                    check_stored_offsets(&consumer, &topic, &done.stored, &metrics);
                }
                commit_positions(&consumer, &topic, &batch);
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        close_off_runtime(consumer, "bar writer consumer").await;
    }))
}

/// Reads records for `flush` (or until [`MAX_BATCH`] or shutdown), checking each tick.
async fn read_batch(
    consumer: &StreamConsumer,
    flush: Duration,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Vec<Read> {
    let deadline = tokio::time::Instant::now() + flush;
    let mut batch = Vec::new();
    while batch.len() < MAX_BATCH {
        let m = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            m = consumer.recv() => m,
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "bar writer: prices consumer error");
                continue;
            }
        };
        let tick = match m.payload().map(PriceTick::from_json) {
            Some(Ok(tick)) => match tick.check(Utc::now()) {
                Ok(()) => Some(tick),
                Err(why) => {
                    metrics.bar_ticks_refused.fetch_add(1, Relaxed);
                    tracing::warn!(symbol = %tick.symbol, price = %tick.price, at = %tick.at, partition = m.partition(), offset = m.offset(), reason = %why, "bar writer: price tick refused");
                    None
                }
            },
            Some(Err(e)) => {
                metrics.bar_ticks_refused.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, code = e.code(), partition = m.partition(), offset = m.offset(), "bar writer: price tick refused or undecodable; skipped");
                None
            }
            None => None,
        };
        batch.push(Read { partition: m.partition(), offset: m.offset(), tick });
    }
    batch
}

async fn write_until_done(
    pool: &PgPool,
    topic: &str,
    batch: &[Read],
    dated: &mut HashSet<NaiveDate>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Option<Written> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match write(pool, topic, batch, dated).await {
            Ok(done) => {
                metrics.bar_ticks.fetch_add(done.ticks, Relaxed);
                metrics.bar_ticks_skipped.fetch_add(done.skipped, Relaxed);
                metrics.bar_writes.fetch_add(1, Relaxed);
                return Some(done);
            }
            Err(e) => {
                metrics.bar_write_failures.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, records = batch.len(), retry_in = ?backoff, "bar writer: write failed; retrying the batch");
            }
        }
        tokio::select! {
            // Not written: a restart reads these records again (Postgres has the offsets).
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Records were skipped as already in the bars: normal after a crash or a rebalance, unless a
/// stored offset lies beyond the end of its partition's log — `prices` was recreated, and every
/// new tick below the stored offset would be skipped. That is logged as an error and counted
/// (`tradeflow_aggregator_bar_offsets_beyond_log`), never corrected silently: the operator resets
/// the partition's row in `price_bar_offsets` (docs/sql.md#price-bars).
fn check_stored_offsets(consumer: &StreamConsumer, topic: &str, stored: &BTreeMap<i32, i64>, metrics: &Metrics) {
    let mut beyond = 0;
    for (&partition, &next) in stored {
        // A blocking broker round trip: keep it off the async workers' queue.
        let watermarks =
            tokio::task::block_in_place(|| consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)));
        match watermarks {
            Ok((_, high)) if next > high => {
                beyond += 1;
                tracing::error!(
                    topic,
                    partition,
                    stored_next_offset = next,
                    log_end = high,
                    "bar writer: the stored prices offset is beyond the log's end (a recreated topic?): ticks below it are skipped; reset price_bar_offsets for this partition"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, partition, "bar writer: watermarks"),
        }
    }
    metrics.bar_offsets_beyond_log.store(beyond, Relaxed);
}

/// Tells Kafka where this group reads from next (a hint for the next owner; Postgres decides).
fn commit_positions(consumer: &StreamConsumer, topic: &str, batch: &[Read]) {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in batch {
        let n = next.entry(r.partition).or_default();
        *n = (*n).max(r.offset + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for (p, n) in next {
        if tpl.add_partition_offset(topic, p, Offset::Offset(n)).is_err() {
            return;
        }
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "bar writer: offset commit (a hint) failed");
    }
}

/// Writes one batch of `topic` records (in topic order per partition) into `price_bars` with the
/// offsets, in one transaction; records below a partition's stored next offset are skipped.
pub async fn write(
    pool: &PgPool,
    topic: &str,
    batch: &[Read],
    dated: &mut HashSet<NaiveDate>,
) -> Result<Written, StoreError> {
    // Date partitions first, outside the transaction (creating one locks the parent table).
    let dates: BTreeSet<NaiveDate> = batch
        .iter()
        .filter_map(|r| r.tick.as_ref())
        .map(|t| t.at.date_naive())
        .filter(|d| !dated.contains(d))
        .collect();
    if !dates.is_empty() {
        let list: Vec<NaiveDate> = dates.iter().copied().collect();
        sqlx::query("SELECT price_bars_partition(d) FROM UNNEST($1::date[]) AS u(d)").bind(&list).execute(pool).await?;
        dated.extend(list);
    }
    let partitions: BTreeSet<i32> = batch.iter().map(|r| r.partition).collect();
    let mut tx = pool.begin().await?;
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    // In partition order, so two writers never wait on each other in a circle.
    for &p in &partitions {
        sqlx::query(
            "INSERT INTO price_bar_offsets (topic, partition, next_offset) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
        )
        .bind(topic)
        .bind(p)
        .execute(&mut *tx)
        .await?;
        let stored: i64 = sqlx::query_scalar(
            "SELECT next_offset FROM price_bar_offsets WHERE topic = $1 AND partition = $2 FOR UPDATE",
        )
        .bind(topic)
        .bind(p)
        .fetch_one(&mut *tx)
        .await?;
        next.insert(p, stored);
    }
    let mut done = Written { stored: next.clone(), ..Written::default() };
    let mut kept = Vec::new();
    let mut advanced = next.clone();
    for r in batch {
        let stored = next.get(&r.partition).copied().unwrap_or(0);
        if r.offset < stored {
            done.skipped += 1;
            continue;
        }
        if let Some(n) = advanced.get_mut(&r.partition) {
            *n = (*n).max(r.offset + 1);
        }
        if let Some(tick) = &r.tick {
            kept.push(tick);
        }
    }
    done.ticks = kept.len() as u64;
    let bars: Vec<Bar> = fold(kept).into_values().collect();
    done.bars = bars.len();
    if !bars.is_empty() {
        upsert(&mut tx, &bars).await?;
    }
    let (parts, offsets): (Vec<i32>, Vec<i64>) = advanced.into_iter().unzip();
    sqlx::query(
        "UPDATE price_bar_offsets o SET next_offset = u.n, updated_at = now()
         FROM UNNEST($2::int[], $3::bigint[]) AS u(p, n)
         WHERE o.topic = $1 AND o.partition = u.p AND u.n > o.next_offset",
    )
    .bind(topic)
    .bind(&parts)
    .bind(&offsets)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done)
}

/// Merges `bars` (of ticks after every stored one) into `price_bars` (`Bar::merge` in SQL).
async fn upsert(tx: &mut sqlx::PgConnection, bars: &[Bar]) -> Result<(), StoreError> {
    let symbols: Vec<&str> = bars.iter().map(|b| b.symbol.as_str()).collect();
    let minutes: Vec<DateTime<Utc>> = bars.iter().map(|b| b.minute).collect();
    let dates: Vec<NaiveDate> = bars.iter().map(Bar::trade_date).collect();
    let col = |f: fn(&Bar) -> Decimal| bars.iter().map(f).collect::<Vec<Decimal>>();
    let ticks: Vec<i64> = bars.iter().map(|b| b.ticks).collect();
    let open_at: Vec<DateTime<Utc>> = bars.iter().map(|b| b.open_at).collect();
    let close_at: Vec<DateTime<Utc>> = bars.iter().map(|b| b.close_at).collect();
    sqlx::query(
        "INSERT INTO price_bars AS b (symbol, minute, trade_date, open, high, low, close, ticks, open_at, close_at)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::date[], $4::numeric[], $5::numeric[], $6::numeric[],
                              $7::numeric[], $8::bigint[], $9::timestamptz[], $10::timestamptz[])
         ON CONFLICT (symbol, minute, trade_date) DO UPDATE SET
             open = CASE WHEN EXCLUDED.open_at < b.open_at THEN EXCLUDED.open ELSE b.open END,
             open_at = LEAST(b.open_at, EXCLUDED.open_at),
             close = CASE WHEN EXCLUDED.close_at >= b.close_at THEN EXCLUDED.close ELSE b.close END,
             close_at = GREATEST(b.close_at, EXCLUDED.close_at),
             high = GREATEST(b.high, EXCLUDED.high),
             low = LEAST(b.low, EXCLUDED.low),
             ticks = b.ticks + EXCLUDED.ticks",
    )
    .bind(&symbols)
    .bind(&minutes)
    .bind(&dates)
    .bind(col(|b| b.open))
    .bind(col(|b| b.high))
    .bind(col(|b| b.low))
    .bind(col(|b| b.close))
    .bind(&ticks)
    .bind(&open_at)
    .bind(&close_at)
    .execute(tx)
    .await?;
    Ok(())
}
