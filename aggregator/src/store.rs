//! Postgres: loading a partition's state (and taking ownership with a new fencing epoch), and the
//! snapshot — changed rows, history, dedupe marks and the next offset in one transaction, written
//! only while this owner's epoch is still the partition's.
//!
//! History is partitioned by trade date: before a snapshot writes a date for the first time in
//! this process, its partition is created if missing (outside the snapshot transaction, so the
//! snapshot never holds the table lock that creating a partition takes).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use tradeflow_core::ClientId;
use tradeflow_core::fill_bars::FillBar;
use tradeflow_core::pnl::Book;
use tradeflow_core::summary::{Mark, Position, SummaryKey};

use crate::state::{PartitionState, Row, RowImage, SnapshotJob};

/// The schema's migrations, embedded in the binary: what `sqlx::migrate!("../migrations")` generated
/// (the same versions, descriptions and SHA-384 checksums, so databases migrated by earlier builds
/// accept them; `the_embedded_migrations_are_the_directory` checks), built without sqlx's proc macro,
/// whose host copy of sqlx, tokio, rustls and ring cost the release build a minute of CPU.
/// A new migration file is added to `MIGRATION_FILES`.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| Migrator {
    migrations: Cow::Owned(MIGRATION_FILES.iter().map(|(name, sql)| migration(name, sql)).collect()),
    ..Migrator::DEFAULT
});

macro_rules! migration_files {
    ($($name:literal),* $(,)?) => { &[$(($name, include_str!(concat!("../../migrations/", $name)))),*] };
}

/// `migrations/`, in version order: (file name, SQL).
const MIGRATION_FILES: &[(&str, &str)] = migration_files![
    "20261123000001_summary.sql",
    "20261126000001_history_by_date.sql",
    "20261126000002_rebuild_lease.sql",
    "20261130000200_pnl.sql",
    "20261130000201_holdings.sql",
    "20261130000300_price_bars.sql",
    "20261130000301_day_pnl.sql",
    "20261130000400_fill_bars.sql",
    "20261130000500_redrive.sql",
];

/// One migration as sqlx reads a file `<version>_<description>.sql` (sqlx-core's `resolve_blocking`).
fn migration(name: &'static str, sql: &'static str) -> Migration {
    let (version, rest) = name.split_once('_').expect("migration file names are <version>_<description>.sql");
    let version = version.parse().expect("a migration file name starts with its version");
    let migration_type = MigrationType::from_filename(rest);
    let description = rest.trim_end_matches(migration_type.suffix()).replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Migration::new(version, Cow::Owned(description), migration_type, Cow::Borrowed(sql), no_tx)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// No connection within the pool's acquire timeout (30 s): where, and why (one more attempt's
    /// error: sqlx's own "pool timed out" names neither).
    #[error("Postgres at {at} did not accept a connection within 30 s (DATABASE_URL): {cause}")]
    Unreachable { at: String, cause: String },
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the snapshot transaction did not finish within {0:?}")]
    Timeout(std::time::Duration),
    /// A stop's time (`--shutdown-secs`, here its whole length) ran out first.
    #[error("the stop's time ({0:?}, --shutdown-secs) ran out before the snapshot committed")]
    OutOfTime(std::time::Duration),
    #[error("stored row is invalid: {0}")]
    Invalid(String),
    /// A backfill holds the partition (its lease runs until it has written the rebuild).
    #[error("partition {0} is being rebuilt by a backfill")]
    Rebuilding(i32),
    #[error("another backfill of this topic is running (one at a time; it holds the backfill lock)")]
    BackfillRunning,
    /// Refusals sent before the snapshot are not on `trades.refused` yet: the snapshot waits.
    #[error(transparent)]
    Undelivered(#[from] crate::refused::Undelivered),
}

/// A backfill's hold on one partition: the epoch it took (fencing the live owner), the rebuild
/// generation it starts, and the offset the live owner had stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub partition: i32,
    pub epoch: i64,
    pub generation: i64,
    pub next_offset: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    Committed {
        rows: usize,
    },
    /// Another instance owns the partition now: nothing was written.
    Fenced,
    /// A backfill took the partition (a newer rebuild generation): nothing was written; the owner
    /// loads it again once the rebuild is written.
    Rebuilt,
}

#[derive(Clone)]
pub struct Store {
    pub pool: PgPool,
    topic: String,
    /// Trade dates whose history partition this process has made sure of.
    dated: Arc<Mutex<HashSet<NaiveDate>>>,
}

pub fn nanos(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub fn from_nanos(ns: i64) -> NaiveDateTime {
    DateTime::from_timestamp_nanos(ns).naive_utc()
}

/// See [`Store::connect`]: longer than any pause between a snapshot's statements, short beside
/// the 120 s a test (or an operator) would wait for a takeover.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "10s";

/// A pool of `max` connections to `options`. Postgres down or unreachable for the pool's acquire
/// timeout (30 s) is [`StoreError::Unreachable`], naming the host and the last attempt's error.
pub async fn connect_pool(options: sqlx::postgres::PgConnectOptions, max: u32) -> Result<PgPool, StoreError> {
    match PgPoolOptions::new().max_connections(max).connect_with(options.clone()).await {
        Ok(pool) => Ok(pool),
        Err(sqlx::Error::PoolTimedOut) => {
            use sqlx::ConnectOptions as _;
            let cause = match options.connect().await {
                Err(e) => e.to_string(),
                Ok(_) => "it answers now; try again".to_owned(),
            };
            Err(StoreError::Unreachable { at: format!("{}:{}", options.get_host(), options.get_port()), cause })
        }
        Err(e) => Err(e.into()),
    }
}

/// [`connect_pool`] for a URL (`DATABASE_URL`).
pub async fn connect_url(url: &str, max: u32) -> Result<PgPool, StoreError> {
    connect_pool(url.parse()?, max).await
}

impl Store {
    pub async fn connect(url: &str, topic: &str) -> Result<Self, StoreError> {
        // An owner paused mid-snapshot (a stopped process, a frozen VM) would hold its row locks
        // until it resumed, and the instance taking its partitions over would wait on them for as
        // long: Postgres ends a transaction left idle this long, and the takeover goes on.
        let options = url
            .parse::<sqlx::postgres::PgConnectOptions>()?
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT)]);
        let pool = connect_pool(options, 4).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, topic: topic.to_owned(), dated: Arc::default() })
    }

    /// Makes sure the history partitions of `dates` exist (each checked once per process).
    async fn ensure_dates(&self, dates: impl IntoIterator<Item = NaiveDate>) -> Result<(), StoreError> {
        let missing: BTreeSet<NaiveDate> = {
            let known = self.dated.lock().unwrap_or_else(|e| e.into_inner());
            dates.into_iter().filter(|d| !known.contains(d)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let missing: Vec<NaiveDate> = missing.into_iter().collect();
        sqlx::query("SELECT summary_history_partition(d), fill_bars_partition(d) FROM UNNEST($1::date[]) AS u(d)")
            .bind(&missing)
            .execute(&self.pool)
            .await?;
        self.dated.lock().unwrap_or_else(|e| e.into_inner()).extend(missing);
        Ok(())
    }

    /// Every partition's stored (epoch, rebuild generation).
    pub async fn epochs(&self) -> Result<HashMap<i32, (i64, i64)>, StoreError> {
        let rows: Vec<(i32, i64, i64)> =
            sqlx::query_as("SELECT partition, epoch, generation FROM partition_offsets WHERE topic = $1")
                .bind(&self.topic)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(p, e, g)| (p, (e, g))).collect())
    }

    /// A partition's stored next offset (no ownership taken); `None` before its first owner.
    pub async fn stored_offset(&self, partition: i32) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT next_offset FROM partition_offsets WHERE topic = $1 AND partition = $2")
            .bind(&self.topic)
            .bind(partition)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Forgets which partitions exist (after a write failed: retention may have dropped one).
    fn forget_dates(&self) {
        self.dated.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Takes ownership of `partition` (bumping its epoch) and loads its state.
    pub async fn load(&self, partition: i32) -> Result<PartitionState, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A partition a backfill holds (its lease not yet lapsed) is not taken: its epoch stays.
        let (next_offset, epoch, generation, rebuilding): (i64, i64, i64, bool) = sqlx::query_as(
            "INSERT INTO partition_offsets (topic, partition, next_offset, epoch, updated_at)
             VALUES ($1, $2, 0, 1, now())
             ON CONFLICT (topic, partition) DO UPDATE SET
                 epoch = CASE WHEN partition_offsets.rebuild_until > now() THEN partition_offsets.epoch
                              ELSE partition_offsets.epoch + 1 END,
                 rebuild_until = CASE WHEN partition_offsets.rebuild_until > now() THEN partition_offsets.rebuild_until END,
                 updated_at = now()
             RETURNING next_offset, epoch, generation, coalesce(rebuild_until > now(), false)",
        )
        .bind(&self.topic)
        .bind(partition)
        .fetch_one(&mut *tx)
        .await?;
        if rebuilding {
            tx.rollback().await?;
            return Err(StoreError::Rebuilding(partition));
        }
        let mut state = PartitionState::new(partition, epoch, next_offset);
        state.generation = generation;
        read_state(&mut tx, &mut state).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Writes a snapshot job (what changed since the last snapshot), fenced on its owner's epoch.
    pub async fn snapshot(&self, job: &SnapshotJob) -> Result<SnapshotOutcome, StoreError> {
        self.write_job(job, None).await
    }

    /// Writes a job in one transaction, fenced on its epoch: the partition's next offset (ending a
    /// backfill's lease: an owner that loaded the partition holds none), with `replace` the rows of
    /// those dates the partition owns deleted first (a rebuild), the job's rows, history and keys,
    /// and the dedupe marks.
    async fn write_job(
        &self,
        job: &SnapshotJob,
        replace: Option<(Option<NaiveDate>, Option<NaiveDate>)>,
    ) -> Result<SnapshotOutcome, StoreError> {
        self.ensure_dates(job.rows.iter().map(|r| r.key.trade_date)).await?;
        let outcome = self.write_job_tx(job, replace).await;
        if outcome.is_err() {
            self.forget_dates();
        }
        outcome
    }

    async fn write_job_tx(
        &self,
        job: &SnapshotJob,
        replace: Option<(Option<NaiveDate>, Option<NaiveDate>)>,
    ) -> Result<SnapshotOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(
            "UPDATE partition_offsets SET next_offset = $3, rebuild_until = NULL, updated_at = now()
             WHERE topic = $1 AND partition = $2 AND epoch = $4",
        )
        .bind(&self.topic)
        .bind(job.partition)
        .bind(job.next_offset)
        .bind(job.epoch)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !held {
            tx.rollback().await?;
            // Taken by a backfill (a newer rebuild generation) or by another instance?
            let generation: Option<i64> =
                sqlx::query_scalar("SELECT generation FROM partition_offsets WHERE topic = $1 AND partition = $2")
                    .bind(&self.topic)
                    .bind(job.partition)
                    .fetch_optional(&self.pool)
                    .await?;
            return Ok(if generation.is_some_and(|g| g > job.generation) {
                SnapshotOutcome::Rebuilt
            } else {
                SnapshotOutcome::Fenced
            });
        }
        if let Some((from, to)) = replace {
            sqlx::query(
                "DELETE FROM summary_current WHERE source_partition = $1
                 AND ($2::date IS NULL OR trade_date >= $2) AND ($3::date IS NULL OR trade_date <= $3)",
            )
            .bind(job.partition)
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM fill_bars WHERE source_partition = $1
                 AND ($2::date IS NULL OR trade_date >= $2) AND ($3::date IS NULL OR trade_date <= $3)",
            )
            .bind(job.partition)
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        }
        if !job.quarantined.is_empty() {
            delete_rows(&mut tx, &job.quarantined).await?;
        }
        let mut cols = Columns::default();
        for r in &job.rows {
            cols.push(&r.key, &r.position, r.mark.as_ref(), job.partition, r.offset);
        }
        insert_rows(&mut tx, &cols, Utc::now()).await?;
        insert_bars(&mut tx, &job.rows, job.partition).await?;
        write_files(&mut tx, job).await?;
        crate::redrive::write(&mut tx, job.partition, &job.redriven).await?;
        tx.commit().await?;
        Ok(SnapshotOutcome::Committed { rows: job.rows.len() })
    }
}

/// Deletes the quarantined rows' keys from `summary_current` and their fill bars (their history
/// stays: it is what was true then). A key Postgres cannot even compare (a NUL byte in it) was never stored: its
/// data error is passed over, inside a savepoint.
async fn delete_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    keys: &[(SummaryKey, i64)],
) -> Result<(), StoreError> {
    for (k, _) in keys {
        sqlx::query("SAVEPOINT quarantine").execute(&mut **tx).await?;
        let deleted = sqlx::query(
            "DELETE FROM summary_current WHERE trade_date = $1 AND client_id = $2 AND account_id = $3 AND symbol = $4",
        )
        .bind(k.trade_date)
        .bind(k.client_id.as_str())
        .bind(k.account_id.as_str())
        .bind(k.symbol.as_str())
        .execute(&mut **tx)
        .await;
        let deleted = match deleted {
            Ok(_) => sqlx::query(
                "DELETE FROM fill_bars WHERE trade_date = $1 AND client_id = $2 AND account_id = $3 AND symbol = $4",
            )
            .bind(k.trade_date)
            .bind(k.client_id.as_str())
            .bind(k.account_id.as_str())
            .bind(k.symbol.as_str())
            .execute(&mut **tx)
            .await,
            e => e,
        };
        match deleted {
            Ok(_) => sqlx::query("RELEASE SAVEPOINT quarantine").execute(&mut **tx).await?,
            Err(e) if DataError::of(&e).is_some() => {
                sqlx::query("ROLLBACK TO SAVEPOINT quarantine").execute(&mut **tx).await?
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(())
}

/// A value Postgres refuses (SQLSTATE class 22, data exception, or 23, integrity constraint
/// violation): retrying cannot help, setting the row aside can. Any other error (a connection,
/// a timeout, a lock) is retried as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataError {
    pub sqlstate: String,
    pub message: String,
}

impl DataError {
    pub fn of(e: &sqlx::Error) -> Option<Self> {
        let db = e.as_database_error()?;
        let code = db.code()?;
        (code.starts_with("22") || code.starts_with("23"))
            .then(|| Self { sqlstate: code.into_owned(), message: db.message().to_owned() })
    }

    pub fn of_store(e: &StoreError) -> Option<Self> {
        match e {
            StoreError::Db(e) => Self::of(e),
            _ => None,
        }
    }
}

impl Store {
    /// The rows of `job` Postgres refuses, each with its error: bisects the job's rows inside one
    /// transaction (each probe in a savepoint rolled back), which is then rolled back — nothing is
    /// written. Empty when every row goes in alone (the failure was elsewhere). O(k log n)
    /// statements for k refused rows among n.
    pub async fn refused_rows(&self, job: &SnapshotJob) -> Result<Vec<(usize, DataError)>, StoreError> {
        self.ensure_dates(job.rows.iter().map(|r| r.key.trade_date)).await?;
        let mut tx = self.pool.begin().await?;
        let mut refused = Vec::new();
        let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
        ranges.push(0..job.rows.len());
        let now = Utc::now();
        while let Some(range) = ranges.pop() {
            if range.is_empty() {
                continue;
            }
            let mut cols = Columns::default();
            for r in &job.rows[range.clone()] {
                cols.push(&r.key, &r.position, r.mark.as_ref(), job.partition, r.offset);
            }
            sqlx::query("SAVEPOINT probe").execute(&mut *tx).await?;
            let mut result = insert_rows(&mut tx, &cols, now).await;
            if result.is_ok() {
                result = insert_bars(&mut tx, &job.rows[range.clone()], job.partition).await;
            }
            sqlx::query("ROLLBACK TO SAVEPOINT probe").execute(&mut *tx).await?;
            match result {
                Ok(()) => {}
                Err(e) => {
                    let Some(data) = DataError::of_store(&e) else { return Err(e) };
                    if range.len() == 1 {
                        refused.push((range.start, data));
                    } else {
                        let mid = range.start + range.len() / 2;
                        ranges.push(mid..range.end);
                        ranges.push(range.start..mid);
                    }
                }
            }
        }
        tx.rollback().await?;
        refused.sort_by_key(|(i, _)| *i);
        Ok(refused)
    }
}

/// Writes a job's dedupe marks into `file_progress`.
async fn write_files(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, job: &SnapshotJob) -> Result<(), StoreError> {
    let (mut f_client, mut f_date, mut f_gen, mut f_max) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((client, date, generation), max) in &job.files {
        f_client.push(client.to_string());
        f_date.push(*date);
        f_gen.push(*generation as i32);
        f_max.push(*max as i64);
    }
    sqlx::query(
        "INSERT INTO file_progress (client_id, file_date, generation, max_offset, source_partition)
         SELECT c, d, g, m, $5 FROM UNNEST($1::text[], $2::date[], $3::integer[], $4::bigint[]) AS u(c, d, g, m)
         ON CONFLICT (client_id, file_date, generation) DO UPDATE
         SET max_offset = EXCLUDED.max_offset, source_partition = EXCLUDED.source_partition",
    )
    .bind(&f_client)
    .bind(&f_date)
    .bind(&f_gen)
    .bind(&f_max)
    .bind(job.partition)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads a partition's rows and dedupe marks into `state` (within `tx`).
async fn read_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    state: &mut PartitionState,
) -> Result<(), StoreError> {
    type Stored = (NaiveDate, String, String, String, i64, i64, i64, Decimal, Decimal, Decimal, i64, i64, i64);
    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT trade_date, client_id, account_id, symbol, trade_count, buy_qty, sell_qty, buy_notional,
                    sell_notional, last_price, first_trade_at_ns, last_trade_at_ns, source_offset
             FROM summary_current WHERE source_partition = $1",
    )
    .bind(state.partition)
    .fetch_all(&mut **tx)
    .await?;
    for (date, client, account, symbol, count, buy_qty, sell_qty, buy_n, sell_n, last, first_ns, last_ns, offset) in
        rows
    {
        let client_id = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let key = SummaryKey { trade_date: date, client_id, account_id: account.into(), symbol: symbol.into() };
        let position = Position {
            trade_count: count,
            buy_qty,
            sell_qty,
            buy_notional: buy_n,
            sell_notional: sell_n,
            last_price: last,
            first_trade_at: from_nanos(first_ns),
            last_trade_at: from_nanos(last_ns),
        };
        state.rows.insert(key, Row::stored(position, offset));
    }
    let files: Vec<(String, NaiveDate, i32, i64)> = sqlx::query_as(
        "SELECT client_id, file_date, generation, max_offset FROM file_progress WHERE source_partition = $1",
    )
    .bind(state.partition)
    .fetch_all(&mut **tx)
    .await?;
    for (client, date, generation, max) in files {
        let client = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        state.files.insert((client, date, generation as u32), max as u64);
    }
    state.redriven.seen = crate::redrive::read(tx, state.partition).await?;
    read_bars(tx, state).await
}

/// Reads the fill bars of a partition's rows into `state` (within `tx`). A bar whose row is not
/// the partition's (none is written so) is passed over.
async fn read_bars(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    state: &mut PartitionState,
) -> Result<(), StoreError> {
    type Bar = (NaiveDate, String, String, String, DateTime<Utc>, i64, i64, i64, Decimal, Decimal);
    let bars: Vec<Bar> = sqlx::query_as(
        "SELECT trade_date, client_id, account_id, symbol, minute, trade_count, buy_qty, sell_qty, buy_notional,
                sell_notional FROM fill_bars WHERE source_partition = $1",
    )
    .bind(state.partition)
    .fetch_all(&mut **tx)
    .await?;
    for (date, client, account, symbol, minute, trade_count, buy_qty, sell_qty, buy_notional, sell_notional) in bars {
        let client_id = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let key = SummaryKey { trade_date: date, client_id, account_id: account.into(), symbol: symbol.into() };
        let Some(row) = state.rows.get_mut(&key) else { continue };
        let bar = FillBar { trade_count, buy_qty, sell_qty, buy_notional, sell_notional };
        row.bars.insert(minute.naive_utc(), bar);
    }
    Ok(())
}

/// Upserts the fill bars of `rows` (each bar whole: writing one again is harmless) into `fill_bars`.
async fn insert_bars(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rows: &[RowImage],
    partition: i32,
) -> Result<(), StoreError> {
    let mut cols = BarColumns::default();
    for r in rows {
        for (minute, bar) in &r.bars {
            cols.push(&r.key, *minute, bar);
        }
    }
    if cols.minute.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO fill_bars (trade_date, client_id, account_id, symbol, minute, trade_count, buy_qty, sell_qty,
                buy_notional, sell_notional, source_partition)
         SELECT u.d, u.c, u.a, u.s, u.m, u.tc, u.bq, u.sq, u.bn, u.sn, $11
         FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], $7::bigint[],
                     $8::bigint[], $9::numeric[], $10::numeric[]) AS u(d, c, a, s, m, tc, bq, sq, bn, sn)
         ON CONFLICT (trade_date, client_id, account_id, symbol, minute) DO UPDATE SET
             trade_count = EXCLUDED.trade_count, buy_qty = EXCLUDED.buy_qty, sell_qty = EXCLUDED.sell_qty,
             buy_notional = EXCLUDED.buy_notional, sell_notional = EXCLUDED.sell_notional,
             source_partition = EXCLUDED.source_partition",
    )
    .bind(&cols.trade_date)
    .bind(&cols.client_id)
    .bind(&cols.account_id)
    .bind(&cols.symbol)
    .bind(&cols.minute)
    .bind(&cols.trade_count)
    .bind(&cols.buy_qty)
    .bind(&cols.sell_qty)
    .bind(&cols.buy_notional)
    .bind(&cols.sell_notional)
    .bind(partition)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct BarColumns {
    trade_date: Vec<NaiveDate>,
    client_id: Vec<String>,
    account_id: Vec<String>,
    symbol: Vec<String>,
    minute: Vec<DateTime<Utc>>,
    trade_count: Vec<i64>,
    buy_qty: Vec<i64>,
    sell_qty: Vec<i64>,
    buy_notional: Vec<Decimal>,
    sell_notional: Vec<Decimal>,
}

impl BarColumns {
    fn push(&mut self, key: &SummaryKey, minute: NaiveDateTime, bar: &FillBar) {
        self.trade_date.push(key.trade_date);
        self.client_id.push(key.client_id.to_string());
        self.account_id.push(key.account_id.to_string());
        self.symbol.push(key.symbol.to_string());
        self.minute.push(minute.and_utc());
        self.trade_count.push(bar.trade_count);
        self.buy_qty.push(bar.buy_qty);
        self.sell_qty.push(bar.sell_qty);
        self.buy_notional.push(bar.buy_notional);
        self.sell_notional.push(bar.sell_notional);
    }
}

/// Writes `cols` into `summary_current` (upsert) and `summary_history` (append) at `now`, and
/// their keys into `summary_keys` (the keys as-of queries probe).
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    cols: &Columns,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for table in ["summary_current", "summary_history"] {
        let conflict = if table == "summary_current" {
            "ON CONFLICT (trade_date, client_id, account_id, symbol) DO UPDATE SET
                    trade_count = EXCLUDED.trade_count, buy_qty = EXCLUDED.buy_qty, sell_qty = EXCLUDED.sell_qty,
                    buy_notional = EXCLUDED.buy_notional, sell_notional = EXCLUDED.sell_notional,
                    avg_buy_price = EXCLUDED.avg_buy_price, avg_sell_price = EXCLUDED.avg_sell_price,
                    last_price = EXCLUDED.last_price, first_trade_at = EXCLUDED.first_trade_at,
                    last_trade_at = EXCLUDED.last_trade_at, first_trade_at_ns = EXCLUDED.first_trade_at_ns,
                    last_trade_at_ns = EXCLUDED.last_trade_at_ns, mark_price = EXCLUDED.mark_price,
                    mark_at = EXCLUDED.mark_at, realized_pnl = EXCLUDED.realized_pnl, source_partition = EXCLUDED.source_partition,
                    source_offset = EXCLUDED.source_offset, snapshot_at = EXCLUDED.snapshot_at"
        } else {
            "ON CONFLICT DO NOTHING"
        };
        let sql = format!(
            "INSERT INTO {table} (trade_date, client_id, account_id, symbol, trade_count, buy_qty, sell_qty,
                    buy_notional, sell_notional, avg_buy_price, avg_sell_price, last_price, first_trade_at,
                    last_trade_at, first_trade_at_ns, last_trade_at_ns, mark_price, mark_at, source_partition,
                    source_offset, snapshot_at, realized_pnl)
                 SELECT u.d, u.c, u.a, u.s, u.tc, u.bq, u.sq, u.bn, u.sn, u.abp, u.asp, u.lp, u.ft, u.lt, u.ftn,
                        u.ltn, u.mp, u.ma, u.sp, u.so, $20::timestamptz, u.rp
                 FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                    $7::bigint[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[],
                    $13::timestamp[], $14::timestamp[], $15::bigint[], $16::bigint[], $17::numeric[],
                    $18::timestamptz[], $19::integer[], $21::bigint[], $22::numeric[])
                 AS u(d, c, a, s, tc, bq, sq, bn, sn, abp, asp, lp, ft, lt, ftn, ltn, mp, ma, sp, so, rp)
                 {conflict}"
        );
        sqlx::query(&sql)
            .bind(&cols.trade_date)
            .bind(&cols.client_id)
            .bind(&cols.account_id)
            .bind(&cols.symbol)
            .bind(&cols.trade_count)
            .bind(&cols.buy_qty)
            .bind(&cols.sell_qty)
            .bind(&cols.buy_notional)
            .bind(&cols.sell_notional)
            .bind(&cols.avg_buy_price)
            .bind(&cols.avg_sell_price)
            .bind(&cols.last_price)
            .bind(&cols.first_trade_at)
            .bind(&cols.last_trade_at)
            .bind(&cols.first_ns)
            .bind(&cols.last_ns)
            .bind(&cols.mark_price)
            .bind(&cols.mark_at)
            .bind(&cols.partition)
            .bind(now)
            .bind(&cols.source_offset)
            .bind(&cols.realized_pnl)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO summary_keys (trade_date, client_id, account_id, symbol)
         SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[]) AS u(d, c, a, s)
         ORDER BY d, c, a, s
         ON CONFLICT DO NOTHING",
    )
    .bind(&cols.trade_date)
    .bind(&cols.client_id)
    .bind(&cols.account_id)
    .bind(&cols.symbol)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Backfill: one at a time per topic, taking the partitions it rebuilds from their live owners.
impl Store {
    /// The topic's backfill lock, held by the returned connection's session (released when it
    /// closes, also if the process dies); `BackfillRunning` if another backfill holds it.
    pub async fn backfill_lock(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('tradeflow.backfill:' || $1))")
            .bind(&self.topic)
            .fetch_one(&mut *conn)
            .await?;
        if !got {
            return Err(StoreError::BackfillRunning);
        }
        // Never back into the pool holding the lock: the session ends with the connection.
        Ok(conn)
    }

    /// Takes `partitions` for a rebuild: a new epoch (the live owner's next snapshot is fenced), the
    /// next rebuild generation, and a lease of `lease` (no aggregator loads them until it lapses).
    pub async fn take_leases(&self, partitions: &[i32], lease: std::time::Duration) -> Result<Vec<Lease>, StoreError> {
        let rows: Vec<(i32, i64, i64, i64)> = sqlx::query_as(
            "INSERT INTO partition_offsets AS o (topic, partition, next_offset, epoch, generation, rebuild_until, updated_at)
             SELECT $1, p, 0, 1, 1, now() + $3 * interval '1 ms', now() FROM UNNEST($2::integer[]) AS u(p)
             ON CONFLICT (topic, partition) DO UPDATE SET epoch = o.epoch + 1, generation = o.generation + 1,
                 rebuild_until = EXCLUDED.rebuild_until, updated_at = now()
             RETURNING partition, epoch, generation, next_offset",
        )
        .bind(&self.topic)
        .bind(partitions)
        .bind(lease.as_millis() as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut leases: Vec<Lease> = rows
            .into_iter()
            .map(|(partition, epoch, generation, next_offset)| Lease { partition, epoch, generation, next_offset })
            .collect();
        leases.sort_by_key(|l| l.partition);
        Ok(leases)
    }

    /// Extends the leases still held (by their epoch); returns how many were.
    pub async fn renew_leases(&self, leases: &[Lease], lease: std::time::Duration) -> Result<u64, StoreError> {
        let (partitions, epochs): (Vec<i32>, Vec<i64>) = leases.iter().map(|l| (l.partition, l.epoch)).unzip();
        let renewed = sqlx::query(
            "UPDATE partition_offsets o SET rebuild_until = now() + $4 * interval '1 ms'
             FROM UNNEST($2::integer[], $3::bigint[]) AS u(p, e)
             WHERE o.topic = $1 AND o.partition = u.p AND o.epoch = u.e AND o.rebuild_until IS NOT NULL",
        )
        .bind(&self.topic)
        .bind(&partitions)
        .bind(&epochs)
        .bind(lease.as_millis() as i64)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(renewed)
    }

    /// Gives back the leases still held without writing (the live owners load them again at once).
    pub async fn release_leases(&self, leases: &[Lease]) -> Result<(), StoreError> {
        let (partitions, epochs): (Vec<i32>, Vec<i64>) = leases.iter().map(|l| (l.partition, l.epoch)).unzip();
        sqlx::query(
            "UPDATE partition_offsets o SET rebuild_until = NULL
             FROM UNNEST($2::integer[], $3::bigint[]) AS u(p, e)
             WHERE o.topic = $1 AND o.partition = u.p AND o.epoch = u.e",
        )
        .bind(&self.topic)
        .bind(&partitions)
        .bind(&epochs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A partition's stored rows and dedupe marks, as its lease found them (no ownership taken).
    /// The newest mark stored per symbol (over every current row): what a rebuilt row is valued at,
    /// as a live row carries its symbol's latest tick (a backfill reads `trades`, not `prices`).
    pub async fn latest_marks(&self) -> Result<HashMap<String, Mark>, StoreError> {
        let marks: Vec<(String, Decimal, DateTime<Utc>)> = sqlx::query_as(
            "SELECT DISTINCT ON (symbol) symbol, mark_price, mark_at FROM summary_current
             WHERE mark_price IS NOT NULL AND mark_at IS NOT NULL ORDER BY symbol, mark_at DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(marks.into_iter().map(|(symbol, price, at)| (symbol, Mark { price, at })).collect())
    }

    pub async fn read_partition(&self, lease: &Lease) -> Result<PartitionState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut state = PartitionState::new(lease.partition, lease.epoch, lease.next_offset);
        state.generation = lease.generation;
        read_state(&mut tx, &mut state).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Writes a partition's rebuild in one transaction fenced on its lease's epoch: the rows of the
    /// dates `from..=to` (`to` open when `None`) that the partition owns are replaced by `job`'s
    /// (which also carries the other dates' rows changed since the lease), with the dedupe marks
    /// and the next offset; the lease ends. `Fenced` if the lease lapsed and an owner took over.
    pub async fn write_rebuild(
        &self,
        job: &SnapshotJob,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<SnapshotOutcome, StoreError> {
        self.write_job(job, Some((from, to))).await
    }
}

#[derive(Default)]
struct Columns {
    trade_date: Vec<NaiveDate>,
    client_id: Vec<String>,
    account_id: Vec<String>,
    symbol: Vec<String>,
    trade_count: Vec<i64>,
    buy_qty: Vec<i64>,
    sell_qty: Vec<i64>,
    buy_notional: Vec<Decimal>,
    sell_notional: Vec<Decimal>,
    avg_buy_price: Vec<Option<Decimal>>,
    avg_sell_price: Vec<Option<Decimal>>,
    last_price: Vec<Decimal>,
    first_trade_at: Vec<NaiveDateTime>,
    last_trade_at: Vec<NaiveDateTime>,
    first_ns: Vec<i64>,
    last_ns: Vec<i64>,
    mark_price: Vec<Option<Decimal>>,
    mark_at: Vec<Option<DateTime<Utc>>>,
    partition: Vec<i32>,
    source_offset: Vec<i64>,
    realized_pnl: Vec<Option<Decimal>>,
}

impl Columns {
    fn push(&mut self, key: &SummaryKey, p: &Position, mark: Option<&Mark>, partition: i32, offset: i64) {
        self.partition.push(partition);
        self.trade_date.push(key.trade_date);
        self.client_id.push(key.client_id.to_string());
        self.account_id.push(key.account_id.to_string());
        self.symbol.push(key.symbol.to_string());
        self.trade_count.push(p.trade_count);
        self.buy_qty.push(p.buy_qty);
        self.sell_qty.push(p.sell_qty);
        self.buy_notional.push(p.buy_notional);
        self.sell_notional.push(p.sell_notional);
        self.avg_buy_price.push(p.avg_buy_price());
        self.avg_sell_price.push(p.avg_sell_price());
        self.last_price.push(p.last_price);
        self.first_trade_at.push(p.first_trade_at);
        self.last_trade_at.push(p.last_trade_at);
        self.first_ns.push(nanos(p.first_trade_at));
        self.last_ns.push(nanos(p.last_trade_at));
        self.mark_price.push(mark.map(|m| m.price));
        self.mark_at.push(mark.map(|m| m.at));
        self.source_offset.push(offset);
        self.realized_pnl.push(Book::from(p).realized());
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::MIGRATOR;

    /// The embedded list is `migrations/` as `sqlx::migrate!` read it: every file, in order, with the
    /// same version, description, type, transaction mode and checksum.
    #[test]
    fn the_embedded_migrations_are_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let on_disk = sqlx::migrate::resolve_blocking(&dir).expect("reading migrations/");
        let embedded = &MIGRATOR.migrations;
        let names = |m: &sqlx::migrate::Migration| (m.version, m.description.to_string());
        assert_eq!(
            embedded.iter().map(names).collect::<Vec<_>>(),
            on_disk.iter().map(|(m, _)| names(m)).collect::<Vec<_>>(),
            "aggregator/src/store.rs MIGRATION_FILES lists migrations/"
        );
        for (ours, (theirs, path)) in embedded.iter().zip(&on_disk) {
            assert_eq!(ours.migration_type, theirs.migration_type, "{}", path.display());
            assert_eq!(ours.no_tx, theirs.no_tx, "{}", path.display());
            assert_eq!(ours.checksum, theirs.checksum, "{}", path.display());
        }
    }
}
