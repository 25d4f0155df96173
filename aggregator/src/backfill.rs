//! `tradeflow backfill --from <date|timestamp|earliest> [--to <date|timestamp>]`: rebuild whole
//! trade dates from the `trades` topic and replace their rows atomically.
//!
//! It reads every partition from its beginning to its end (as of the start: `partition.eof`),
//! in one thread per core (each a consumer of its share of the partitions), outside the live
//! consumer group, applies each trade of the affected dates once (the same identity dedupe as the
//! live aggregator), then replaces those dates' rows in one transaction.
//! It does not use offsets-for-times: a record's Kafka timestamp is its publish time, not its trade
//! date (`ingestor --backfill` republishes a past day with today's timestamps), so it reads the
//! whole topic: correct whatever the order of publishing, at the cost of reading what retention
//! keeps. Rebuilding whole dates means a timestamp bound widens to its date. Running it twice leaves the same current rows.
//! Run it for days the live aggregators no longer receive trades for (or with them stopped):
//! a live instance that is still changing a rebuilt row would overwrite it at its next snapshot.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::{Message as _, Offset};
use tokio_util::sync::CancellationToken;
use tradeflow_core::kafka::{EndOfPartitionIsNormal, KafkaArgs};
use tradeflow_core::record::TradeRecord;
use tradeflow_core::topics::TopicArgs;

use crate::state::{Applied, PartitionState};
use crate::store::Store;
use crate::{AggregateError, marks};

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
    /// Last trade date (or time, widened to its date), inclusive; default: the last date seen.
    #[arg(long, value_parser = parse_bound)]
    pub to: Option<Bound>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackfillReport {
    pub records: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub rows: usize,
}

pub async fn run(args: BackfillArgs, shutdown: CancellationToken) -> Result<BackfillReport, AggregateError> {
    let topics = args.topics.topics();
    let store = Store::connect(&args.database.database_url, &topics.trades).await?;
    let from = args.from.date();
    let to = args.to.and_then(Bound::date);
    let in_range = move |d: NaiveDate| from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t);
    let kafka = args.kafka.clone();
    let topic = topics.trades.clone();
    let cancel = shutdown.clone();
    let (states, report) = tokio::task::spawn_blocking(move || read_topic(&kafka, &topic, in_range, &cancel))
        .await
        .map_err(|e| AggregateError::Thread(e.to_string()))??;
    if shutdown.is_cancelled() {
        return Err(AggregateError::Thread("backfill interrupted before writing; nothing changed".into()));
    }
    let mut rows = Vec::new();
    let mut last_date = None;
    for s in &states {
        for (key, p) in &s.rows {
            last_date = last_date.max(Some(key.trade_date));
            let offset = s.row_offsets.get(key).copied().unwrap_or(s.next_offset);
            rows.push((key.clone(), p.clone(), s.partition, offset));
        }
    }
    let dates = match (from, to) {
        (None, None) => None,
        (f, t) => Some((f.unwrap_or(NaiveDate::MIN), t.or(last_date).unwrap_or(NaiveDate::MAX))),
    };
    let marks = marks::snapshot(&Default::default());
    let written = store.replace_dates(dates, &rows, &marks).await?;
    let report = BackfillReport { rows: written, ..report };
    tracing::info!(?dates, ?report, "backfill replaced the rows");
    Ok(report)
}

type ReadResult = Result<(Vec<PartitionState>, BackfillReport), AggregateError>;

fn consumer(kafka: &KafkaArgs) -> Result<BaseConsumer<EndOfPartitionIsNormal>, KafkaError> {
    kafka
        .consumer_config()
        .set("group.id", format!("tradeflow-backfill-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(EndOfPartitionIsNormal)
}

/// Reads every partition of `topic` to its end, in one thread per core (each with its own consumer
/// and a share of the partitions: partitions are independent, so parsing and applying scale).
fn read_topic(
    kafka: &KafkaArgs,
    topic: &str,
    in_range: impl Fn(NaiveDate) -> bool + Sync,
    shutdown: &CancellationToken,
) -> ReadResult {
    let metadata = consumer(kafka)?.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition).into());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, partitions.len());
    let records = AtomicU64::new(0);
    let done = AtomicUsize::new(0);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} records {per_sec} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<i32> = partitions.iter().copied().skip(t).step_by(threads).collect();
                let (in_range, records, done) = (&in_range, &records, &done);
                scope.spawn(move || read_partitions(kafka, topic, &mine, in_range, shutdown, records, done))
            })
            .collect();
        let mut last_log = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            let (n, d) = (records.load(Relaxed), done.load(Relaxed));
            if let Some(bar) = &bar {
                bar.set_position(n);
                bar.set_message(format!("{d} of {} partitions done", partitions.len()));
            } else if last_log.elapsed() >= Duration::from_secs(1) {
                tracing::info!(records = n, partitions_done = d, "backfill progress");
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
    let mut states = Vec::new();
    let mut report = BackfillReport::default();
    for result in results {
        let (s, r) = result?;
        states.extend(s);
        report.records += r.records;
        report.applied += r.applied;
        report.duplicates += r.duplicates;
    }
    Ok((states, report))
}

/// One reader: `partitions` of `topic` from the beginning to their ends.
fn read_partitions(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: &[i32],
    in_range: &(impl Fn(NaiveDate) -> bool + Sync),
    shutdown: &CancellationToken,
    progress: &AtomicU64,
    done: &AtomicUsize,
) -> ReadResult {
    let consumer = consumer(kafka)?;
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut states: BTreeMap<i32, PartitionState> =
        partitions.iter().map(|&p| (p, PartitionState::new(p, 0, 0))).collect();
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut report = BackfillReport::default();
    while at_end.len() < partitions.len() && !shutdown.is_cancelled() {
        let Some(result) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = match result {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(p)) => {
                if at_end.insert(p) {
                    done.fetch_add(1, Relaxed);
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                continue;
            }
        };
        report.records += 1;
        if report.records % 1024 == 0 {
            progress.fetch_add(1024, Relaxed); // shared by the readers: not touched per record
        }
        let Some(Ok(record)) = m.payload().map(TradeRecord::from_json) else {
            tracing::error!(partition = m.partition(), offset = m.offset(), "not a trade record; skipped");
            continue;
        };
        if !in_range(record.trade.trade_date()) {
            continue;
        }
        let Some(state) = states.get_mut(&m.partition()) else { continue };
        match state.apply(m.offset(), &record) {
            Applied::Row(_) => report.applied += 1,
            Applied::Duplicate => report.duplicates += 1,
            Applied::Rejected(why) => tracing::error!(reason = %why, "trade rejected"),
        }
    }
    progress.fetch_add(report.records % 1024, Relaxed);
    Ok((states.into_values().collect(), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(parse_bound("earliest"), Ok(Bound::Earliest));
        assert_eq!(parse_bound("2026-11-02").unwrap().date(), NaiveDate::from_ymd_opt(2026, 11, 2));
        assert_eq!(parse_bound("2026-11-02T10:00:00").unwrap().date(), NaiveDate::from_ymd_opt(2026, 11, 2));
        assert!(parse_bound("yesterday").is_err());
    }
}
