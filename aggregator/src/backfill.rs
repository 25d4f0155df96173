//! `tradeflow backfill --from <date|timestamp|earliest> [--to <date|timestamp>]`: rebuild trade
//! dates from the `trades` topic and replace their rows — safely while everything runs.
//!
//! **Fenced like an owner.** It takes every partition of `trades` the way a new owner does — a new
//! epoch in `partition_offsets`, so the live owner's next snapshot is fenced — plus the next rebuild
//! generation and a lease (renewed while it runs; no aggregator loads the partition until it is
//! written or the lease lapses). With `E` the partition's end when taken, it reads the partition
//! from its beginning to `E` and builds, in one pass:
//! - the rows of the dates in range from scratch (each trade once: the identity dedupe, fresh);
//! - the other dates' rows as stored, carried forward with the records between the stored offset
//!   and `E` (so every row of the partition reflects exactly the records before `E`);
//!
//! then writes them in one transaction per partition fenced on its epoch (the range's old rows
//! replaced, dedupe marks, next offset `E`, lease ended) and publishes them to `summaries` with the
//! new generation, which supersedes every older version on the page. The live owner is told by its
//! fenced snapshot, loads the partition again, and carries on from `E`. No row is ever written
//! from two states; a client's rows (one partition) switch in one transaction.
//!
//! It reads the whole topic rather than offsets-for-times: a record's Kafka timestamp is its
//! publish time, not its trade date (`ingestor --backfill` republishes a past day with today's
//! timestamps). One backfill per topic at a time (a Postgres advisory lock; a second is refused).
//! `--dry-run` reads without taking anything and prints what would change.
//!
//! **A record that is not a trade record** (the live aggregator's `undecodable`) is counted in
//! [`BackfillReport::undecodable`], the first [`UNDECODABLE_SHOWN`] named by partition and offset
//! (so an operator can read them: `kcat -C -t trades -p P -o O -c 1`), and set aside on
//! `trades.refused` as the live aggregator does ([`crate::refused`]; at least once) — but only when it lies
//! at or past the partition's stored offset. Below it, the live owner consumed it and committed a
//! snapshot past it, which it does only after its refusal was delivered: it is on `trades.refused`
//! already, and sending it again would make every backfill repeat every old refusal. At or past
//! it, the live owner has not (durably) refused it, and after the backfill it resumes at `E` and
//! never will: the backfill is the only reader that can. Refusals are delivered before the
//! partition's rebuild is written (the live path's order). A dry run sets nothing aside. **A
//! trade that would overflow its row** (the live aggregator's `unappliable`) is counted, named
//! and set aside by the same rule ([`BackfillReport::unappliable`]): below the stored offset the
//! live owner applied the same trades in the same order and refused it already.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::{Message as _, Offset};
use tokio_util::sync::CancellationToken;
use tradeflow_core::kafka::{EndOfPartitionIsNormal, KafkaArgs};
use tradeflow_core::record::TradeRecord;
use tradeflow_core::summary::{Mark, SummaryKey};
use tradeflow_core::topics::TopicArgs;

use crate::AggregateError;
use crate::backfill_refusals::{Unrefused, set_aside};
use crate::changelog::SummaryChange;
use crate::metrics::Metrics;
use crate::refused::Reason;
use crate::refused::RefusedSink;
use crate::state::{Applied, FileKey, PartitionState, RowImage, SnapshotJob};
use crate::store::{Lease, SnapshotOutcome, Store};

/// A backfill bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Earliest,
    Date(NaiveDate),
    Time(NaiveDateTime),
}

impl Bound {
    fn date(self) -> Option<NaiveDate> {
        match self {
            Bound::Earliest => None,
            Bound::Date(d) => Some(d),
            Bound::Time(t) => Some(t.date()),
        }
    }
}

pub fn parse_bound(s: &str) -> Result<Bound, String> {
    if s == "earliest" {
        return Ok(Bound::Earliest);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Bound::Date(d));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(Bound::Time(t));
        }
    }
    Err(format!("{s:?}: expected earliest, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"))
}

/// `tradeflow backfill`
#[derive(Args, Clone, Debug)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub database: crate::config::DatabaseArgs,
    /// First trade date (or time, widened to its date), or `earliest` for every date.
    #[arg(long, value_parser = parse_bound)]
    pub from: Bound,
    /// Last trade date (or time, widened to its date), inclusive; default: no end.
    #[arg(long, value_parser = parse_bound)]
    pub to: Option<Bound>,
    /// Read and compare only: print the rows that would change, write nothing, take nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds a partition stays held without a renewal (renewed every third of it while the
    /// backfill runs): how long live owners wait for a backfill that died. 3 to 86,400 (a day).
    #[arg(long, env = "TRADEFLOW_BACKFILL_LEASE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=86_400))]
    pub lease_secs: u64,
}

impl BackfillArgs {
    /// The trade dates to rebuild; [`AggregateError::Invalid`] when `--to` is before `--from`
    /// (checked before anything is taken or connected to).
    pub fn dates(&self) -> Result<Dates, AggregateError> {
        let dates = Dates { from: self.from.date(), to: self.to.and_then(Bound::date) };
        if let (Some(from), Some(to)) = (dates.from, dates.to)
            && to < from
        {
            return Err(AggregateError::Invalid(format!(
                "--to {to} is before --from {from}: no trade date is in that range"
            )));
        }
        Ok(dates)
    }
}

/// How many undecodable records a report names (partition, offset); the count covers them all.
pub const UNDECODABLE_SHOWN: usize = 10;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackfillReport {
    pub records: u64,
    pub applied: u64,
    pub duplicates: u64,
    /// Records that are not trade records (or break the edge contract): skipped by the rebuild.
    pub undecodable: u64,
    /// The first [`UNDECODABLE_SHOWN`] of them as (partition, offset), in that order.
    pub undecodable_at: Vec<(i32, i64)>,
    /// Trades refused because they would overflow their row (the live aggregator's
    /// `unappliable`: `Position::apply`'s exact arithmetic); not in any row.
    pub unappliable: u64,
    /// The first [`UNDECODABLE_SHOWN`] of them as (partition, offset).
    pub unappliable_at: Vec<(i32, i64)>,
    /// Of both, set aside on `trades.refused` by this backfill (those at or past their
    /// partition's stored offset; the live aggregator had refused the others).
    pub set_aside: u64,
    pub rows: usize,
    /// Dry run: rows that would change (added, changed or removed), and by how many trades.
    pub would_change: Option<(usize, i64)>,
}

/// The trade dates a backfill rebuilds: `from..=to`, either end open.
#[derive(Clone, Copy, Debug)]
pub struct Dates {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl Dates {
    pub fn contains(self, d: NaiveDate) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }
}

/// One partition as the backfill builds it: the range rebuilt from scratch, the rest carried.
struct Build {
    lease: Lease,
    /// The end read to: everything before it is in the build.
    end: i64,
    rebuilt: PartitionState,
    carried: PartitionState,
    /// Undecodable records at or past the stored offset: to be set aside before writing.
    refusals: Vec<Unrefused>,
    /// Their payloads' bytes: at most [`REFUSALS_HELD_MAX`].
    refusals_bytes: usize,
    /// False in a dry run: refused records are counted and named, never held or set aside.
    hold_refusals: bool,
}

/// Most bytes of refused records' payloads one partition's rebuild holds until it sets them aside
/// (each up to ~1 MiB): memory stays bounded whatever another producer wrote to `trades`.
const REFUSALS_HELD_MAX: usize = 64 * 1024 * 1024;

/// A record the rebuild refuses, as the live aggregator would: not a trade record (`Undecodable`),
/// or a trade that would overflow its row (`Unappliable`, with its trade id and row key).
struct Refused {
    reason: Reason,
    offset: i64,
    detail: String,
    ids: Option<(String, String)>,
}

impl Build {
    /// Counts and names `refused` in `report` and logs it; unless the live owner refused it already
    /// (below the stored offset: it read the same records in the same order), holds it with its
    /// `payload` to be set aside before the partition is written.
    fn refuse(&mut self, report: &mut BackfillReport, refused: Refused, payload: &[u8]) -> Result<(), AggregateError> {
        let (count, named) = match refused.reason {
            Reason::Unappliable => (&mut report.unappliable, &mut report.unappliable_at),
            _ => (&mut report.undecodable, &mut report.undecodable_at),
        };
        *count += 1;
        if named.len() < UNDECODABLE_SHOWN {
            named.push((self.lease.partition, refused.offset));
        }
        let live_refused = refused.offset < self.lease.next_offset;
        tracing::error!(partition = self.lease.partition, offset = refused.offset, code = refused.reason.code(), reason = %refused.detail, live_refused, "record refused; skipped");
        if live_refused || !self.hold_refusals {
            return Ok(());
        }
        let (trade_id, row_key) = refused.ids.unzip();
        self.hold(Unrefused {
            reason: refused.reason,
            offset: refused.offset,
            detail: refused.detail,
            trade_id,
            row_key,
            payload: payload.to_vec(),
        })
    }

    /// Holds `refusal` to be set aside before the partition is written (not in a dry run).
    fn hold(&mut self, refusal: Unrefused) -> Result<(), AggregateError> {
        if !self.hold_refusals {
            return Ok(());
        }
        self.refusals_bytes += refusal.payload.len();
        if self.refusals_bytes > REFUSALS_HELD_MAX {
            return Err(AggregateError::TooManyRefused {
                partition: self.lease.partition,
                max_mib: REFUSALS_HELD_MAX / (1024 * 1024),
            });
        }
        self.refusals.push(refusal);
        Ok(())
    }

    /// Applies one trade to the rebuilt or the carried state; `Some(why)` when the summary refuses
    /// it (it would overflow its row: the live aggregator's `unappliable`).
    fn apply(
        &mut self,
        offset: i64,
        record: &TradeRecord,
        redrive: bool,
        in_range: bool,
        report: &mut BackfillReport,
    ) -> Option<String> {
        let state = if in_range {
            &mut self.rebuilt
        } else if offset >= self.lease.next_offset {
            &mut self.carried
        } else {
            return None;
        };
        match state.apply_as(offset, record, redrive) {
            Applied::Row(_) => report.applied += 1,
            Applied::Duplicate => report.duplicates += 1,
            Applied::Rejected(why) => return Some(why),
        }
        None
    }

    /// What the rebuild writes: every rebuilt row, the carried rows that changed, the dedupe marks
    /// of both (the higher per file), next offset = the end read to. Each row is valued at its
    /// symbol's newest stored mark (`marks`), so a rebuild keeps the rows' P&L.
    fn job(&self, marks: &HashMap<String, Mark>) -> SnapshotJob {
        let mut rows = Vec::new();
        // Rebuilt rows with all their bars (the range's are deleted first), carried ones with the
        // bars that changed.
        for (state, keys, all) in [
            (&self.rebuilt, self.rebuilt.rows.keys().cloned().collect::<Vec<_>>(), true),
            (&self.carried, self.carried.dirty_rows.iter().cloned().collect(), false),
        ] {
            for key in keys {
                let Some(row) = state.rows.get(&key) else { continue };
                let mark = marks.get(key.symbol.as_str()).cloned();
                let bars = row.bars_to_write(all);
                rows.push(RowImage { key, position: row.position.clone(), mark, offset: row.offset, bars });
            }
        }
        let mut files: HashMap<FileKey, u64> = HashMap::new();
        let changed = self.carried.dirty_files.iter().filter_map(|f| self.carried.files.get_key_value(f));
        for (file, max) in self.rebuilt.files.iter().chain(changed) {
            let at = files.entry(file.clone()).or_insert(*max);
            *at = (*at).max(*max).max(self.carried.files.get(file).copied().unwrap_or(0));
        }
        SnapshotJob {
            partition: self.lease.partition,
            epoch: self.lease.epoch,
            generation: self.lease.generation,
            next_offset: self.end,
            rows,
            files: files.into_iter().collect(),
            quarantined: Vec::new(),
            // Both sets, as the marks: the table only grows (`ON CONFLICT DO NOTHING`).
            redriven: self.rebuilt.redriven.seen.iter().chain(&self.carried.redriven.dirty).cloned().collect(),
        }
    }
}

pub async fn run(args: BackfillArgs, shutdown: CancellationToken) -> Result<BackfillReport, AggregateError> {
    let dates = args.dates()?;
    let topics = args.topics.topics();
    let url = args.database.url().map_err(AggregateError::PasswordFile)?;
    let store = Store::connect(&url, &topics.trades).await?;
    let _lock = store.backfill_lock().await?;
    let partitions = {
        let (kafka, topic) = (args.kafka.clone(), topics.trades.clone());
        tokio::task::spawn_blocking(move || topic_partitions(&kafka, &topic))
            .await
            .map_err(|e| AggregateError::Thread(e.to_string()))??
    };
    let lease = Duration::from_secs(args.lease_secs);
    // A dry run takes nothing: it reads to the ends it finds and compares with what is stored.
    let leases = if args.dry_run {
        let mut leases = Vec::new();
        for &partition in &partitions {
            leases.push(Lease { partition, epoch: 0, generation: 0, next_offset: i64::MAX });
        }
        leases
    } else {
        store.take_leases(&partitions, lease).await?
    };
    let renewing = (!args.dry_run).then(|| {
        let (store, leases, stop) = (store.clone(), leases.clone(), shutdown.child_token());
        let task = tokio::spawn(renew(store, leases, lease, stop.clone()));
        (task, stop)
    });
    let result = rebuild(&args, &store, &topics, &leases, dates, &shutdown).await;
    if let Some((task, stop)) = renewing {
        stop.cancel();
        let _ = task.await;
    }
    if result.is_err() && !args.dry_run {
        // Whatever was not written goes back to the live owners now, not when the lease lapses.
        if let Err(e) = store.release_leases(&leases).await {
            tracing::warn!(error = %e, "could not give the partitions back; they return when the lease lapses");
        }
    }
    result
}

/// Renews the leases every third of their length until `stop`.
async fn renew(store: Store, leases: Vec<Lease>, lease: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(lease / 3) => {}
        }
        if let Err(e) = store.renew_leases(&leases, lease).await {
            tracing::warn!(error = %e, "lease renewal failed; retried");
        }
    }
}

async fn rebuild(
    args: &BackfillArgs,
    store: &Store,
    topics: &tradeflow_core::topics::Topics,
    leases: &[Lease],
    dates: Dates,
    shutdown: &CancellationToken,
) -> Result<BackfillReport, AggregateError> {
    // The stored rows, as the leases found them (live owners can no longer write them).
    let mut builds = Vec::new();
    for lease in leases {
        let carried = if args.dry_run { PartitionState::default() } else { store.read_partition(lease).await? };
        let mut rebuilt = PartitionState::new(lease.partition, lease.epoch, 0);
        rebuilt.generation = lease.generation;
        builds.push(Build {
            lease: *lease,
            end: 0,
            rebuilt,
            carried,
            refusals: Vec::new(),
            refusals_bytes: 0,
            hold_refusals: !args.dry_run,
        });
    }
    let (kafka, topic, cancel) = (args.kafka.clone(), topics.trades.clone(), shutdown.clone());
    let (builds, mut report) = tokio::task::spawn_blocking(move || read_topic(&kafka, &topic, builds, dates, &cancel))
        .await
        .map_err(|e| AggregateError::Thread(e.to_string()))??;
    if shutdown.is_cancelled() {
        return Err(AggregateError::Thread("backfill interrupted before writing; nothing changed".into()));
    }
    if args.dry_run {
        let stored = crate::verify::current_rows(&store.pool).await?;
        let mut changed = 0;
        let mut trades = 0;
        let mut rebuilt: HashMap<_, _> = HashMap::new();
        for b in &builds {
            rebuilt.extend(b.rebuilt.rows.iter().map(|(k, r)| (k.clone(), r.position.clone())));
        }
        for (key, position) in &rebuilt {
            let before = stored.get(key);
            if before != Some(position) {
                changed += 1;
                trades += position.trade_count - before.map_or(0, |p| p.trade_count);
                println!(
                    "would change\t{key:?}\ttrades {} -> {}",
                    before.map_or(0, |p| p.trade_count),
                    position.trade_count
                );
            }
        }
        for (key, before) in stored.iter().filter(|(k, _)| dates.contains(k.trade_date) && !rebuilt.contains_key(*k)) {
            changed += 1;
            trades -= before.trade_count;
            println!("would remove\t{key:?}\ttrades {}", before.trade_count);
        }
        report.would_change = Some((changed, trades));
        return Ok(report);
    }
    let producer: BaseProducer = args
        .kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "0")
        .create()?;
    let fault = Fault::from_env();
    if let Fault::Hold(pause) = fault {
        tokio::time::sleep(pause).await;
    }
    // Read after the leases are taken: the live owners no longer write these partitions' rows.
    let marks = store.latest_marks().await?;
    let sink = RefusedSink::new(&args.kafka, &topics.trades_refused, &topics.trades, Arc::new(Metrics::default()))?;
    for (written, build) in builds.iter().enumerate() {
        if fault == Fault::CrashAfter(written) {
            eprintln!("TRADEFLOW_BACKFILL_FAULT=crash-after:{written}: aborting before the next partition");
            std::process::abort();
        }
        report.set_aside += set_aside(&sink, build.lease.partition, &build.refusals).await?;
        let job = build.job(&marks);
        match store.write_rebuild(&job, dates.from, dates.to).await? {
            SnapshotOutcome::Committed { rows } => report.rows += rows,
            _ => {
                return Err(AggregateError::Thread(format!(
                    "partition {}: the lease lapsed and its owner took it back before the rebuild was written \
                     (partitions before it are written; run the backfill again)",
                    job.partition
                )));
            }
        }
        // The page is told: the rebuilt rows, in the new generation (superseding older versions).
        for r in &job.rows {
            let change =
                SummaryChange::new(&r.key, &r.position, None, job.partition, r.offset).with_generation(job.generation);
            let (key, payload) = (r.key.kafka_key(), change.to_json());
            let mut record = BaseRecord::to(&topics.summaries).key(&key).payload(&payload);
            while let Err((e, back)) = producer.send(record) {
                tracing::debug!(error = %e, "summaries queue full; polling");
                producer.poll(Duration::from_millis(10));
                record = back;
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    tracing::info!(?dates, ?report, "backfill wrote the rebuilt rows");
    Ok(report)
}

/// Fault injection for tests, `TRADEFLOW_BACKFILL_FAULT`: `hold:MS` waits MS ms after reading,
/// before writing (holding the lock and the leases); `crash-after:N` aborts the process after
/// writing N partitions (no cleanup: the leases lapse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    Hold(Duration),
    CrashAfter(usize),
}

impl Fault {
    fn from_env() -> Self {
        let value = std::env::var("TRADEFLOW_BACKFILL_FAULT").unwrap_or_default();
        match value.split_once(':') {
            Some(("hold", ms)) => ms.parse().map_or(Fault::None, |ms| Fault::Hold(Duration::from_millis(ms))),
            Some(("crash-after", n)) => n.parse().map_or(Fault::None, Fault::CrashAfter),
            _ => Fault::None,
        }
    }
}

type ReadResult = Result<(Vec<Build>, BackfillReport), AggregateError>;

fn consumer(kafka: &KafkaArgs) -> Result<BaseConsumer<EndOfPartitionIsNormal>, KafkaError> {
    kafka
        .consumer_config()
        .set("group.id", format!("tradeflow-backfill-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(EndOfPartitionIsNormal)
}

fn topic_partitions(kafka: &KafkaArgs, topic: &str) -> Result<Vec<i32>, AggregateError> {
    let metadata = consumer(kafka)?.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition).into());
    }
    Ok(partitions)
}

/// Reads every partition of `topic` from its beginning to its end as of now (taken after the
/// leases, so it is past every stored offset), in one thread per core (each with its own consumer
/// and a share of the partitions: partitions are independent, so parsing and applying scale).
fn read_topic(
    kafka: &KafkaArgs,
    topic: &str,
    mut builds: Vec<Build>,
    dates: Dates,
    shutdown: &CancellationToken,
) -> ReadResult {
    let probe = consumer(kafka)?;
    let mut total = 0u64;
    let mut sizes = Vec::with_capacity(builds.len());
    for b in &mut builds {
        let (low, high) = probe.fetch_watermarks(topic, b.lease.partition, Duration::from_secs(30))?;
        b.end = high;
        let size = (high - low).max(0) as u64;
        sizes.push(size);
        total += size;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, builds.len().max(1));
    let records = AtomicU64::new(0);
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} records {per_sec} ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let shares = balance(builds, &sizes, threads);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|mine| {
                let records = &records;
                scope.spawn(move || read_partitions(kafka, topic, mine, dates, shutdown, records))
            })
            .collect();
        let mut last_log = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            let n = records.load(Relaxed);
            if let Some(bar) = &bar {
                bar.set_position(n);
            } else if last_log.elapsed() >= Duration::from_secs(1) {
                let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let eta = (total.saturating_sub(n)) as f64 / rate.max(1.0);
                tracing::info!(
                    records = n,
                    of = total,
                    per_sec = rate as u64,
                    eta_secs = eta as u64,
                    "backfill progress"
                );
                last_log = Instant::now();
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| AggregateError::Thread("a backfill reader panicked".into()))?)
            .collect::<Vec<ReadResult>>()
    });
    if let Some(bar) = bar {
        bar.finish();
    }
    let mut builds = Vec::new();
    let mut report = BackfillReport::default();
    for result in results {
        let (b, r) = result?;
        builds.extend(b);
        report.records += r.records;
        report.applied += r.applied;
        report.duplicates += r.duplicates;
        report.undecodable += r.undecodable;
        report.undecodable_at.extend(r.undecodable_at);
        report.unappliable += r.unappliable;
        report.unappliable_at.extend(r.unappliable_at);
    }
    for at in [&mut report.undecodable_at, &mut report.unappliable_at] {
        at.sort_unstable();
        at.truncate(UNDECODABLE_SHOWN);
    }
    builds.sort_by_key(|b| b.lease.partition);
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        records = report.records,
        secs,
        per_sec = (report.records as f64 / secs.max(1e-3)) as u64,
        "backfill read the topic"
    );
    Ok((builds, report))
}

/// `builds` (with their partitions' record counts, `sizes`) split into `readers` shares of about
/// equal records: the largest partition first, each to the share with the fewest records so far.
/// Keys hash unevenly over partitions (a few large clients), and a reader left alone with the
/// largest partitions is the tail of the whole backfill.
fn balance<T>(builds: Vec<T>, sizes: &[u64], readers: usize) -> Vec<Vec<T>> {
    let mut sized: Vec<(u64, T)> = sizes.iter().copied().zip(builds).collect();
    sized.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    let mut shares: Vec<(u64, Vec<T>)> = (0..readers.max(1)).map(|_| (0, Vec::new())).collect();
    for (size, build) in sized {
        if let Some(least) = shares.iter_mut().min_by_key(|(records, _)| *records) {
            least.0 += size;
            least.1.push(build);
        }
    }
    shares.into_iter().map(|(_, builds)| builds).collect()
}

/// One reader: its `builds`' partitions from the beginning to their ends.
fn read_partitions(
    kafka: &KafkaArgs,
    topic: &str,
    mut builds: Vec<Build>,
    dates: Dates,
    shutdown: &CancellationToken,
    progress: &AtomicU64,
) -> ReadResult {
    let mut report = BackfillReport::default();
    let mut index: HashMap<i32, usize> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for (i, b) in builds.iter().enumerate() {
        if b.end > 0 {
            tpl.add_partition_offset(topic, b.lease.partition, Offset::Beginning)?;
            index.insert(b.lease.partition, i);
        }
    }
    let consumer = consumer(kafka)?;
    consumer.assign(&tpl)?;
    let mut pending: HashSet<i32> = index.keys().copied().collect();
    // `is_cancelled` takes the token's lock (3 % of a reader's CPU when asked per record): asked
    // once every 1,024 polls, and whenever a poll waited in vain (a broker down: up to 100 ms each).
    let (mut cancelled, mut polls) = (false, 0u64);
    while !pending.is_empty() && !cancelled {
        if polls % 1024 == 0 {
            cancelled = shutdown.is_cancelled();
        }
        polls += 1;
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            cancelled = shutdown.is_cancelled();
            continue;
        };
        let m = match result {
            Ok(m) => m,
            // The end of what the partition holds now (at or past `end`, which was its end when
            // taken): done, also when retention left it with fewer records than `end` suggests.
            Err(KafkaError::PartitionEOF(p)) => {
                pending.remove(&p);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                continue;
            }
        };
        let Some(&i) = index.get(&m.partition()) else { continue };
        let build = &mut builds[i];
        if m.offset() >= build.end {
            pending.remove(&m.partition());
            continue;
        }
        if m.offset() + 1 >= build.end {
            pending.remove(&m.partition());
        }
        report.records += 1;
        if report.records % 1024 == 0 {
            progress.fetch_add(1024, Relaxed); // shared by the readers: not touched per record
        }
        let record = match m.payload().map(TradeRecord::from_json) {
            Some(Ok(record)) => record,
            other => {
                let detail = crate::refusal::undecodable_detail(other.as_ref().and_then(|r| r.as_ref().err()));
                let refusal = Refused { reason: Reason::Undecodable, offset: m.offset(), detail, ids: None };
                build.refuse(&mut report, refusal, m.payload().unwrap_or_default())?;
                continue;
            }
        };
        let redrive = crate::redrive::is_redrive(&m);
        let in_range = dates.contains(record.trade.trade_date());
        if let Some(detail) = build.apply(m.offset(), &record, redrive, in_range, &mut report) {
            let ids = (record.id.to_string(), SummaryKey::of(&record.id.client, &record.trade).kafka_key());
            let refusal = Refused { reason: Reason::Unappliable, offset: m.offset(), detail, ids: Some(ids) };
            build.refuse(&mut report, refusal, m.payload().unwrap_or_default())?;
        }
    }
    progress.fetch_add(report.records % 1024, Relaxed);
    Ok((builds, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_records_are_held_up_to_a_bound_and_not_at_all_in_a_dry_run() {
        let build = |hold_refusals| Build {
            lease: Lease { partition: 4, epoch: 1, generation: 0, next_offset: 0 },
            end: 0,
            rebuilt: PartitionState::default(),
            carried: PartitionState::default(),
            refusals: Vec::new(),
            refusals_bytes: 0,
            hold_refusals,
        };
        let refusal = |bytes: usize| Unrefused {
            reason: Reason::Undecodable,
            offset: 7,
            detail: "not a trade record".into(),
            trade_id: None,
            row_key: None,
            payload: vec![b'x'; bytes],
        };
        let mut dry = build(false);
        dry.hold(refusal(REFUSALS_HELD_MAX + 1)).unwrap();
        assert!(dry.refusals.is_empty(), "a dry run holds nothing");
        let mut real = build(true);
        real.hold(refusal(REFUSALS_HELD_MAX / 2)).unwrap();
        real.hold(refusal(REFUSALS_HELD_MAX / 2)).unwrap();
        assert_eq!(real.refusals.len(), 2);
        let e = real.hold(refusal(1)).unwrap_err();
        assert!(matches!(e, AggregateError::TooManyRefused { partition: 4, max_mib: 64 }), "{e}");
        assert_eq!(real.refusals.len(), 2, "the one past the bound is not held");
    }

    #[test]
    fn readers_get_shares_of_about_equal_records_and_every_partition_once() {
        // Partition i holds sizes[i] records: round-robin would give reader 0 {0, 2, 4} = 900
        // and reader 1 {1, 3, 5} = 30.
        let sizes = [500, 10, 300, 10, 100, 10];
        let shares = balance((0..sizes.len()).collect(), &sizes, 2);
        let records: Vec<u64> = shares.iter().map(|s| s.iter().map(|&p| sizes[p]).sum()).collect();
        assert_eq!(records, vec![500, 430]);
        let mut all: Vec<usize> = shares.concat();
        all.sort_unstable();
        assert_eq!(all, (0..sizes.len()).collect::<Vec<_>>());
        assert_eq!(balance(vec![7], &[3], 0), vec![vec![7]], "at least one reader");
    }

    #[test]
    fn bounds() {
        assert_eq!(parse_bound("earliest"), Ok(Bound::Earliest));
        assert_eq!(parse_bound("2026-11-02").unwrap().date(), NaiveDate::from_ymd_opt(2026, 11, 2));
        assert_eq!(parse_bound("2026-11-02T10:00:00").unwrap().date(), NaiveDate::from_ymd_opt(2026, 11, 2));
        assert!(parse_bound("yesterday").is_err());
    }
}
