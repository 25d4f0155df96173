//! Aggregator: producer → ingestor → aggregator against the real broker and a real Postgres,
//! compared with the oracle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tradeflow_aggregator::changelog::SummaryChange;
use tradeflow_aggregator::fill_bars::{compare_fill_bars, current_fill_bars};
use tradeflow_aggregator::holdings::{compare_holdings, current_holdings};
use tradeflow_aggregator::store::{SnapshotOutcome, Store};
use tradeflow_aggregator::verify::{Difference, compare, compare_realized_pnl, current_realized_pnl, current_rows};
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::log_format::LogFileName;
use tradeflow_core::oracle::Oracle;
use tradeflow_core::record::{TradeId, TradeRecord};
use tradeflow_core::topics::PartitionArgs;

use crate::harness::http::{labelled, metric};
use crate::harness::{self, Service, TestDatabase, TestTopics, TopicReader, eventually};

const LONG: Duration = Duration::from_secs(120);

/// Logs, topics and a database for the ingestor and aggregator processes (the browser test runs
/// them too).
pub struct Pipeline {
    pub root: PathBuf,
    pub logs: PathBuf,
    pub topics: TestTopics,
    pub db: TestDatabase,
}

impl Pipeline {
    pub async fn new() -> Self {
        Self::on_server(&harness::postgres::server_url()).await
    }

    async fn on_server(server: &str) -> Self {
        let root = harness::temp_dir();
        Self {
            logs: root.join("logs"),
            root,
            topics: TestTopics::shared().await,
            db: TestDatabase::create_on(server).await,
        }
    }

    /// On a broker of the test's own (topics with the broker's default replication factor).
    pub async fn on_broker(kafka: KafkaArgs) -> Self {
        Self::on(kafka, &harness::postgres::server_url()).await
    }

    /// On a broker and a Postgres server of the test's own.
    pub async fn on(kafka: KafkaArgs, server: &str) -> Self {
        let root = harness::temp_dir();
        let topics = TestTopics::create(kafka, PartitionArgs::default()).await;
        Self { logs: root.join("logs"), root, topics, db: TestDatabase::create_on(server).await }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        // A secured broker's client settings (SASL_SSL tests); none otherwise.
        let config =
            self.topics.kafka.kafka_config.as_ref().map(|f| ("KAFKA_CONFIG_FILE", f.path.display().to_string()));
        let mut env: Vec<(&'static str, String)> = config.into_iter().collect();
        env.extend(vec![
            ("KAFKA_BROKERS", self.topics.kafka.brokers.clone()),
            ("TRADEFLOW_TOPIC_PREFIX", self.topics.prefix.clone()),
            ("TRADE_LOG_DIR", self.logs.display().to_string()),
            ("TRADEFLOW_INGESTOR_STATE", self.root.join("state").display().to_string()),
            ("TRADEFLOW_INGESTOR_METRICS_ADDR", "127.0.0.1:0".into()),
            ("DATABASE_URL", self.db.url.clone()),
            ("TRADEFLOW_AGGREGATOR_GROUP", format!("{}agg", self.topics.prefix)),
            ("TRADEFLOW_SNAPSHOT_INTERVAL_MS", "200".into()),
            ("TRADEFLOW_SESSION_TIMEOUT_MS", "6000".into()),
            ("RUST_LOG", "info".into()),
        ]);
        env
    }

    /// Starts `tradeflow <what>` (ingestor or aggregator) with its `/metrics` on `metrics_port`.
    pub fn start(&self, what: &str, metrics_port: u16) -> Service {
        self.start_with(what, metrics_port, &[])
    }

    /// [`Self::start`] with more environment (later settings win).
    pub fn start_with(&self, what: &str, metrics_port: u16, extra: &[(&'static str, &str)]) -> Service {
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let var =
            if what == "ingestor" { "TRADEFLOW_INGESTOR_METRICS_ADDR" } else { "TRADEFLOW_AGGREGATOR_METRICS_ADDR" };
        env.push((var, format!("127.0.0.1:{metrics_port}")));
        Service::start(what, &[what], &env, &self.root)
    }

    pub fn produce(&self, args: &[&str]) {
        Service::produce_logs(args, &self.logs);
    }

    /// Waits until the snapshot tables equal the oracle of the log files.
    pub async fn converges(&self) {
        let oracle = Oracle::from_dir(&self.logs).expect("oracle");
        assert!(!oracle.rows.is_empty());
        let diffs = eventually("the snapshot tables to equal the oracle", LONG, || async {
            self.differences(&oracle)
                .await
                .filter(|(rows, rest)| rows.is_empty() && rest.is_empty())
                .map(|(rows, _)| rows)
        })
        .await;
        assert!(diffs.is_empty());
        // And the command says so too.
        let out = std::process::Command::new(harness::tradeflow_bin())
            .args(["verify", "--logs"])
            .arg(&self.logs)
            .env("DATABASE_URL", &self.db.url)
            .output()
            .expect("verify");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The snapshot tables equal the oracle of the log files now (no waiting: nothing writes them).
    pub async fn equals_the_oracle(&self) {
        let oracle = Oracle::from_dir(&self.logs).expect("oracle");
        assert!(!oracle.rows.is_empty());
        let (rows, rest) = self.differences(&oracle).await.expect("the snapshot tables readable");
        assert!(rows.is_empty(), "{} rows differ from the oracle, e.g. {:?}", rows.len(), rows.first());
        assert_eq!(rest, Vec::<String>::new(), "holdings, day P&L or fill bars differ from the oracle");
    }

    /// The snapshot tables against the oracle: the rows' and realized P&L's differences, and those
    /// of the holdings, their day P&L (at the stored marks and day-open marks) and the fill bars,
    /// described; `None` while a query fails.
    async fn differences(&self, oracle: &Oracle) -> Option<(Vec<Difference>, Vec<String>)> {
        let stored = current_rows(&self.db.pool).await.ok()?;
        let mut rows = compare(&stored, oracle);
        // The realized P&L is a trading field: stored exactly as the oracle computes it.
        rows.extend(compare_realized_pnl(&current_realized_pnl(&self.db.pool).await.ok()?, oracle));
        // Holdings (a view over the rows) equal the oracle's: nothing lost or doubled across dates.
        let held = current_holdings(&self.db.pool).await.ok()?;
        let day = tradeflow_aggregator::day_pnl::current_day_pnl(&self.db.pool).await.ok()?;
        let day_diffs = tradeflow_aggregator::day_pnl::compare_day_pnl(&self.db.pool, &day, oracle).await.ok()?;
        // Fill bars (written with the rows) equal the oracle's: nothing lost or doubled per minute.
        let bars = current_fill_bars(&self.db.pool).await.ok()?;
        let mut rest: Vec<String> =
            compare_holdings(&held, oracle).iter().map(|d| format!("holdings: {d:?}")).collect();
        rest.extend(day_diffs.iter().map(|d| format!("day P&L: {d:?}")));
        rest.extend(compare_fill_bars(&bars, oracle).iter().map(|d| format!("fill bars: {d:?}")));
        Some((rows, rest))
    }

    pub fn cleanup(self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[tokio::test]
async fn golden_pipeline_equals_the_oracle_and_streams_changes() {
    let p = Pipeline::new().await;
    p.produce(&[
        "--clients",
        "1,2,3",
        "--count",
        "3000",
        "--seed",
        "21",
        "--start",
        "2026-11-20T23:59:00",
        "--rate",
        "40",
    ]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    p.converges().await;
    // The run crosses midnight: holdings (equal to the oracle's, checked above) span both dates.
    let held = current_holdings(&p.db.pool).await.expect("holdings");
    assert!(held.values().any(|h| h.first_trade_date < h.last_trade_date), "no holding spans two dates");
    // Caught up: the lag of the partitions holding trades is reported and zero.
    eventually("zero consumer lag", LONG, || async {
        let lags = labelled(port, "tradeflow_aggregator_consumer_lag").await?;
        (lags.len() == 12 && lags.iter().all(|&l| l == 0)).then_some(())
    })
    .await;
    // Every row is on the changelog; the newest version of each row equals the snapshot row.
    let stored = current_rows(&p.db.pool).await.expect("rows");
    let mut reader = TopicReader::new(&p.topics.kafka, &p.topics.topics.summaries);
    reader
        .read_until("every row on the changelog", LONG, |records| {
            for r in records {
                let c = SummaryChange::from_json(&r.payload).expect("a summary change");
                assert_eq!(
                    r.key,
                    format!("{}|{}|{}|{}", c.row.trade_date, c.row.client_id, c.row.account_id, c.row.symbol)
                        .as_bytes()
                );
            }
            let latest = latest_changes(records);
            latest.len() == stored.len()
                && stored
                    .iter()
                    .all(|(k, pos)| latest.get(&k.kafka_key()).is_some_and(|c| c.row.trade_count == pos.trade_count))
        })
        .await;
    // The changelog's rows carry the oracle's P&L: realized exactly; without a price feed no mark,
    // so no mark-to-market P&L.
    let oracle = Oracle::from_dir(&p.logs).expect("oracle");
    let latest = latest_changes(&reader.records);
    for (key, position) in &oracle.rows {
        let row = &latest[&key.kafka_key()].row;
        let expected = tradeflow_core::pnl::Book::from(position).realized();
        assert!(expected.is_some(), "{key:?}");
        assert_eq!(row.realized_pnl, expected, "{key:?}");
        assert_eq!((row.mark_price, row.unrealized_pnl, row.total_pnl), (None, None, None), "{key:?}");
    }
    assert!(
        oracle
            .rows
            .values()
            .any(|p| tradeflow_core::pnl::Book::from(p).realized() != Some(rust_decimal::Decimal::ZERO)),
        "some row realizes P&L"
    );
    p.cleanup();
}

/// The newest version of every row on the changelog, by its Kafka key.
fn latest_changes(records: &[harness::Record]) -> HashMap<String, SummaryChange> {
    let mut latest: HashMap<String, SummaryChange> = HashMap::new();
    for r in records {
        let c = SummaryChange::from_json(&r.payload).expect("a summary change");
        let k = String::from_utf8_lossy(&r.key).to_string();
        if latest.get(&k).is_none_or(|old| old.offset <= c.offset) {
            latest.insert(k, c);
        }
    }
    latest
}

/// An owner that dies with row changes it never published leaves them only in Postgres; a closed
/// trade date's rows never change again, so without more they would be missing from the changelog
/// (and every dashboard) for good. The next owner publishes every row it loads. Here the first
/// owner's changelog linger is ten minutes, so it publishes nothing before it is killed.
#[tokio::test]
async fn a_new_owner_publishes_the_rows_its_predecessor_died_with_unsent() {
    let p = Pipeline::new().await;
    // Two trade dates: 30 s before midnight and 30 s after.
    p.produce(&[
        "--clients",
        "1,2",
        "--count",
        "600",
        "--seed",
        "43",
        "--start",
        "2026-11-20T23:59:30",
        "--rate",
        "10",
    ]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port_a = harness::broker::free_port();
    let mut a = p.start_with("aggregator", port_a, &[("TRADEFLOW_CHANGELOG_LINGER_MS", "600000")]);
    p.converges().await;
    let stored = current_rows(&p.db.pool).await.expect("rows");
    assert!(stored.keys().any(|k| k.trade_date.to_string() == "2026-11-20"), "a row of the closed date");
    assert!(stored.keys().any(|k| k.trade_date.to_string() == "2026-11-21"), "a row of the next date");
    // A has changes queued for the changelog, none sent.
    let queued = metric(port_a, "tradeflow_aggregator_changes_published_total").await.unwrap_or(0);
    assert!(queued > 0, "A handed no change to its changelog producer");
    let watcher: rdkafka::consumer::BaseConsumer = p.topics.kafka.client_config().create().expect("consumer");
    let (_, high) =
        rdkafka::consumer::Consumer::fetch_watermarks(&watcher, &p.topics.topics.summaries, 0, Duration::from_secs(10))
            .expect("watermarks");
    assert_eq!(high, 0, "A's changes were meant to stay in its producer's queue");
    a.kill9();
    // B takes every partition over (after A's session expires) and publishes every row it loads.
    let port_b = harness::broker::free_port();
    let _b = p.start("aggregator", port_b);
    let mut reader = TopicReader::new(&p.topics.kafka, &p.topics.topics.summaries);
    reader
        .read_until("every stored row on the changelog", LONG, |records| {
            let latest = latest_changes(records);
            latest.len() == stored.len()
                && stored.iter().all(|(k, pos)| {
                    latest.get(&k.kafka_key()).is_some_and(|c| {
                        c.row.trade_count == pos.trade_count
                            && c.row.buy_qty == pos.buy_qty
                            && c.row.sell_notional == pos.sell_notional
                    })
                })
        })
        .await;
    // Counted as republished, not as changes by trades (B consumed no trade: A had snapshotted all).
    let republished = metric(port_b, "tradeflow_aggregator_rows_republished_total").await.unwrap_or(0);
    assert!(republished >= stored.len() as u64, "{republished} rows republished, {} stored", stored.len());
    assert_eq!(metric(port_b, "tradeflow_aggregator_changes_published_total").await, Some(0));
    assert_eq!(metric(port_b, "tradeflow_aggregator_apply_seconds_count").await, Some(0));
    p.cleanup();
}

#[tokio::test]
async fn kill_9_of_the_aggregator_loses_and_double_counts_nothing() {
    let p = Pipeline::new().await;
    let producer = Service::producer(
        &["--clients", "1,2,3,4", "--rate", "500", "--count", "6000", "--seed", "5"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port = harness::broker::free_port();
    let mut aggregator = p.start("aggregator", port);
    let mut producer = producer;
    for round in 0..3u64 {
        // After some progress (records applied and at least one snapshot) — a different point each round.
        let target = 300 + (round * 211 + std::process::id() as u64) % 700;
        eventually("aggregator progress", LONG, || async {
            let records = metric(port, "tradeflow_aggregator_records_total").await?;
            let snaps = metric(port, "tradeflow_aggregator_snapshots_total").await?;
            (records >= target && snaps >= 1).then_some(())
        })
        .await;
        // Every consumed record's age is observed (freshness), duplicates included.
        let ages = metric(port, "tradeflow_aggregator_record_age_seconds_count").await;
        assert!(ages.is_some_and(|n| n >= target), "record ages observed: {ages:?}, records ≥ {target}");
        // And every row change published has its aggregation time observed.
        let changes = metric(port, "tradeflow_aggregator_changes_published_total").await.unwrap_or(0);
        let applied = metric(port, "tradeflow_aggregator_apply_seconds_count").await.unwrap_or(0);
        assert!(changes >= 1 && applied >= changes, "apply times {applied} vs changes published {changes}");
        aggregator.kill9();
        aggregator = p.start("aggregator", port);
    }
    producer.exited("the producer to finish", LONG).await;
    p.converges().await;
    drop(aggregator);
    p.cleanup();
}

/// Static membership (`--instance-id`): an instance killed -9 and restarted under its name resumes
/// its partitions (nothing lost or doubled), and a second running instance under the same name fences
/// the first, which stops with an error instead of lingering — the tables stay exact throughout.
#[tokio::test]
async fn static_members_restart_under_their_name_and_a_duplicate_name_stops_the_older_one() {
    let p = Pipeline::new().await;
    let producer = Service::producer(
        &["--clients", "1,2,3,4", "--rate", "500", "--count", "6000", "--seed", "6"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let id = [("TRADEFLOW_AGGREGATOR_INSTANCE_ID", "agg-a")];
    let port = harness::broker::free_port();
    let mut aggregator = p.start_with("aggregator", port, &id);
    let mut target = 300;
    for _ in 0..2 {
        eventually("aggregator progress", LONG, || async {
            let records = metric(port, "tradeflow_aggregator_records_total").await?;
            let snaps = metric(port, "tradeflow_aggregator_snapshots_total").await?;
            (records >= target && snaps >= 1).then_some(())
        })
        .await;
        aggregator.kill9();
        aggregator = p.start_with("aggregator", port, &id);
        target += 200;
    }
    // The restarted instance owns its partitions again and consumes.
    eventually("the restarted instance to own partitions", LONG, || async {
        (metric(port, "tradeflow_aggregator_partitions_owned").await? > 0).then_some(())
    })
    .await;
    // A second running instance under the same name: the first is fenced by the coordinator and stops.
    let port2 = harness::broker::free_port();
    let mut second = p.start_with("aggregator", port2, &id);
    aggregator.exited("the fenced instance to stop", LONG).await;
    assert_eq!(aggregator.exited_successfully(), Some(false), "the fenced instance's exit status");
    let log = std::fs::read_to_string(p.root.join("aggregator.log")).unwrap_or_default();
    assert!(log.contains("fatal consumer error"), "no fatal consumer error in the aggregator log");
    assert!(second.running(), "the newer instance stopped too");
    let mut producer = producer;
    producer.exited("the producer to finish", LONG).await;
    p.converges().await;
    drop(second);
    p.cleanup();
}

#[tokio::test]
async fn duplicate_records_in_the_topic_count_once() {
    let p = Pipeline::new().await;
    p.produce(&["--clients", "9", "--count", "500", "--seed", "8", "--start", "2026-11-20T10:00:00"]);
    // Publish every line twice (as after an ingestor crash), with the same identities.
    let producer: FutureProducer =
        p.topics.kafka.client_config().set("partitioner", "murmur2_random").create().expect("producer");
    let path = std::fs::read_dir(&p.logs).expect("logs").next().expect("a file").expect("entry").path();
    let name = LogFileName::parse(&path.file_name().expect("name").to_string_lossy()).expect("log name");
    let bytes = std::fs::read(&path).expect("read");
    let mut offset = 0u64;
    let mut records = Vec::new();
    for line in bytes[..bytes.len() - 1].split(|&b| b == b'\n') {
        let trade = tradeflow_core::log_format::parse_line(line).expect("parse");
        let id = TradeId { client: name.client.clone(), date: name.date, generation: 0, offset };
        records.push(TradeRecord { id, trade }.to_json());
        offset += line.len() as u64 + 1;
    }
    for round in 0..2 {
        for (i, payload) in records.iter().enumerate() {
            // The second round re-sends the first half, interleaved as a restarted ingestor would.
            if round == 1 && i >= records.len() / 2 {
                break;
            }
            let record = FutureRecord::to(&p.topics.topics.trades).key("9").payload(payload);
            producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("send");
        }
    }
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    p.converges().await;
    let dups = eventually("duplicates counted", LONG, || async {
        metric(port, "tradeflow_aggregator_duplicates_total").await.filter(|&n| n == 250)
    })
    .await;
    assert_eq!(dups, 250);
    p.cleanup();
}

#[tokio::test]
async fn a_stale_owner_cannot_overwrite_the_new_owners_progress() {
    let db = TestDatabase::create().await;
    let old = Store::connect(&db.url, "trades").await.expect("store");
    let new = Store::connect(&db.url, "trades").await.expect("store");
    let mut stale = old.load(3).await.expect("load");
    stale.next_offset = 10;
    assert_eq!(
        old.snapshot(&stale.take_snapshot(&HashMap::new())).await.expect("snapshot"),
        SnapshotOutcome::Committed { rows: 0 }
    );
    // The partition moves: the new owner loads (a new epoch) and makes progress.
    let mut current = new.load(3).await.expect("load");
    assert_eq!(current.next_offset, 10);
    current.next_offset = 20;
    assert_eq!(
        new.snapshot(&current.take_snapshot(&HashMap::new())).await.expect("snapshot"),
        SnapshotOutcome::Committed { rows: 0 }
    );
    // The stale owner wakes up and tries to write its progress: refused.
    stale.next_offset = 15;
    assert_eq!(old.snapshot(&stale.take_snapshot(&HashMap::new())).await.expect("snapshot"), SnapshotOutcome::Fenced);
    let stored: i64 = sqlx::query_scalar("SELECT next_offset FROM partition_offsets WHERE partition = 3")
        .fetch_one(&db.pool)
        .await
        .expect("offset");
    assert_eq!(stored, 20);
}

#[tokio::test]
async fn the_read_only_role_can_query_and_cannot_write() {
    let db = TestDatabase::create().await;
    Store::connect(&db.url, "trades").await.expect("migrations");
    let reader =
        sqlx::PgPool::connect(&url_for_role(&db.url, "tradeflow_reader")).await.expect("connect as tradeflow_reader");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM summary_rows").fetch_one(&reader).await.expect("select");
    assert_eq!(n, 0);
    let denied = sqlx::query("DELETE FROM summary_current").execute(&reader).await;
    let err = denied.expect_err("the reader must not write").to_string();
    assert!(err.contains("permission denied"), "{err}");
}

fn url_for_role(url: &str, role: &str) -> String {
    // postgres://user@host... → postgres://role@host...
    let (scheme, rest) = url.split_once("://").expect("url");
    let rest = rest.split_once('@').map(|(_, r)| r).unwrap_or(rest);
    format!("{scheme}://{role}@{rest}")
}

/// The SQL blocks of docs/sql.md (the queries the README routes to), in order.
fn documented_queries() -> Vec<String> {
    let doc = include_str!("../../docs/sql.md");
    doc.split("```sql\n").skip(1).filter_map(|b| b.split("```").next()).map(str::to_owned).collect()
}

#[tokio::test]
async fn documented_sql_queries_run_as_the_read_only_role() {
    let queries = documented_queries();
    assert!(queries.len() >= 5, "docs/sql.md shows {} queries", queries.len());
    let p = Pipeline::new().await;
    p.produce(&["--clients", "1,2,3", "--count", "2000", "--seed", "13", "--start", "2026-11-20T09:00:00"]);
    // A tick for the bars queries (published before the aggregator starts, read by its bar writer).
    let tick = tradeflow_core::price::PriceTick {
        symbol: "AAPL".into(),
        price: "101.5".parse().expect("price"),
        at: chrono::Utc::now(),
    };
    let producer: rdkafka::producer::FutureProducer = p.topics.kafka.client_config().create().expect("producer");
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&p.topics.topics.prices).key("AAPL").payload(&tick.to_json()),
            Duration::from_secs(10),
        )
        .await
        .expect("publish tick");
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let _aggregator = p.start("aggregator", harness::broker::free_port());
    p.converges().await;
    eventually("the tick's bar", LONG, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM price_bars").fetch_one(&p.db.pool).await.ok()?;
        (n > 0).then_some(())
    })
    .await;
    let oracle = Oracle::from_dir(&p.logs).expect("oracle");
    let reader = sqlx::PgPool::connect(&url_for_role(&p.db.url, "tradeflow_reader")).await.expect("reader");
    for q in &queries {
        let rows = sqlx::query(q).fetch_all(&reader).await.unwrap_or_else(|e| panic!("{q}\nfailed: {e}"));
        assert!(!rows.is_empty(), "no rows from\n{q}");
    }
    // The daily totals agree with the oracle.
    use sqlx::Row as _;
    let daily = sqlx::query(&queries[4]).fetch_all(&reader).await.expect("daily");
    let trades: rust_decimal::Decimal = daily[0].get("trades");
    assert_eq!(trades, rust_decimal::Decimal::from(oracle.rows.values().map(|p| p.trade_count).sum::<i64>()));
    // Day P&L by account: the realized P&L sums to the oracle's.
    let by_account = sqlx::query(&queries[5]).fetch_all(&reader).await.expect("day P&L by account");
    let realized: rust_decimal::Decimal =
        by_account.iter().map(|r| r.get::<rust_decimal::Decimal, _>("realized")).sum();
    let expected: rust_decimal::Decimal = oracle
        .rows
        .iter()
        .filter(|(k, _)| k.trade_date.to_string() == "2026-11-20")
        .map(|(_, p)| tradeflow_core::pnl::Book::from(p).realized().expect("representable"))
        .sum();
    assert_eq!(realized, expected);
    // As of a time before any snapshot: nothing.
    let none: i64 =
        sqlx::query_scalar("SELECT count(*) FROM summary_as_of('2000-01-01')").fetch_one(&reader).await.expect("as of");
    assert_eq!(none, 0);
    p.cleanup();
}

#[tokio::test]
async fn a_second_instance_joins_then_leaves_while_trades_flow() {
    let p = Pipeline::new().await;
    let mut producer = Service::producer(
        &["--clients", "1,2,3,4,5,6", "--rate", "300", "--count", "6000", "--seed", "17"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let ports: Vec<u16> = (0..2).map(|_| harness::broker::free_port()).collect();
    let owned = |port: u16| async move { metric(port, "tradeflow_aggregator_partitions_owned").await };
    let mut a = p.start("aggregator", ports[0]);
    eventually("A owns every partition", LONG, || async { owned(ports[0]).await.filter(|&n| n == 12) }).await;
    let mut b = p.start("aggregator", ports[1]);
    eventually("A and B share the partitions", LONG, || async {
        let (x, y) = (owned(ports[0]).await?, owned(ports[1]).await?);
        (x > 0 && y > 0 && x + y == 12).then_some(())
    })
    .await;
    // B loaded each partition it was given from Postgres, and counted it (bench-scale reads these).
    eventually("B counts a load per partition it owns", LONG, || async {
        let loads = metric(ports[1], "tradeflow_aggregator_partition_loads_total").await?;
        let took = metric(ports[1], "tradeflow_aggregator_partition_load_microseconds_total").await?;
        let y = owned(ports[1]).await?;
        (y > 0 && loads >= y && took > 0).then_some(())
    })
    .await;
    // B leaves (snapshotting its partitions first); dying and pausing members: failover.rs.
    assert!(b.terminate(Duration::from_secs(30)), "B did not stop cleanly");
    let left = std::time::Instant::now();
    eventually("A owns every partition again", Duration::from_secs(60), || async {
        owned(ports[0]).await.filter(|&n| n == 12)
    })
    .await;
    assert!(left.elapsed() < Duration::from_secs(20), "partitions were orphaned for {:?}", left.elapsed());
    producer.exited("the producer to finish", LONG).await;
    p.converges().await;
    a.kill9();
    p.cleanup();
}

#[tokio::test]
async fn backfill_rebuilds_days_atomically_and_twice_equals_once() {
    let p = Pipeline::new().await;
    p.produce(&[
        "--clients",
        "1,2",
        "--rate",
        "2",
        "--days",
        "2",
        "--seed",
        "6",
        "--start",
        "2026-11-01T22:00:00",
        "--count",
        "20000",
    ]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let expected_lines = Oracle::from_dir(&p.logs).expect("oracle").lines as usize;
    let mut reader = TopicReader::new(&p.topics.kafka, &p.topics.topics.trades);
    reader.read_n(expected_lines, LONG).await;
    // Duplicates in the topic, as after an ingestor crash: backfill counts them once too.
    let producer: FutureProducer =
        p.topics.kafka.client_config().set("partitioner", "murmur2_random").create().expect("producer");
    for r in reader.records.iter().take(50) {
        let record = FutureRecord::to(&p.topics.topics.trades).key(&r.key).payload(&r.payload);
        producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("send");
    }
    let backfill = |from: &str, to: Option<&str>| {
        let mut cmd = std::process::Command::new(harness::tradeflow_bin());
        cmd.args(["backfill", "--from", from]).envs(p.env());
        if let Some(to) = to {
            cmd.args(["--to", to]);
        }
        let out = cmd.output().expect("backfill");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let oracle = Oracle::from_dir(&p.logs).expect("oracle");
    let day = |d: &str| {
        let date: chrono::NaiveDate = d.parse().expect("date");
        let mut o = oracle.clone();
        o.rows.retain(|k, _| k.trade_date == date);
        o
    };
    // Everything, into empty tables (duplicates counted once).
    let out = backfill("earliest", None);
    assert!(out.contains("duplicates dropped: 50"), "{out}");
    assert!(out.contains(&format!("rows written: {}", oracle.rows.len())), "{out}");
    p.converges().await;
    // Wrong rows in Postgres (every trade count off by 1,000): a dry run says what a backfill of
    // one day would change, and changes nothing.
    sqlx::query("UPDATE summary_current SET trade_count = trade_count + 1000")
        .execute(&p.db.pool)
        .await
        .expect("corrupt");
    backfill("2026-11-02", Some("2026-11-02"));
    let corrupted = current_rows(&p.db.pool).await.expect("rows");
    let dry = {
        let mut cmd = std::process::Command::new(harness::tradeflow_bin());
        cmd.args(["backfill", "--from", "2026-11-01", "--to", "2026-11-01", "--dry-run"]).envs(p.env());
        let out = cmd.output().expect("dry run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let day1 = day("2026-11-01").rows.len();
    assert!(dry.contains(&format!("would change {day1} rows ({:+} trades)", -1000 * day1 as i64)), "{dry}");
    assert_eq!(current_rows(&p.db.pool).await.expect("rows"), corrupted, "a dry run writes nothing");
    // The range is rebuilt; the other day is carried as stored (its wrong rows stay wrong).
    let stored = current_rows(&p.db.pool).await.expect("rows");
    let mut day2 = stored.clone();
    day2.retain(|k, _| k.trade_date.to_string() == "2026-11-02");
    assert_eq!(compare(&day2, &day("2026-11-02")), vec![], "the backfilled day equals the oracle");
    assert_eq!(
        stored
            .iter()
            .filter(|(k, p)| k.trade_date.to_string() == "2026-11-01"
                && oracle.rows[*k].trade_count + 1000 == p.trade_count)
            .count(),
        day1,
        "the other day is left as stored"
    );
    // Twice equals once.
    let out = backfill("2026-11-02", Some("2026-11-02"));
    assert!(out.contains(&format!("rows written: {}", day("2026-11-02").rows.len())), "{out}");
    assert_eq!(current_rows(&p.db.pool).await.expect("rows"), stored);
    // Everything again: equal to the oracle.
    backfill("earliest", None);
    p.converges().await;
    p.cleanup();
}

/// Postgres refuses the aggregator at its stop (its database closed to connections, its sessions
/// ended): the final snapshot cannot be written. The stop must still end within `--shutdown-secs`
/// (not hang on retries), say so in its exit status and log — it was not the graceful stop — and
/// lose nothing: started again once the database takes connections, the aggregator consumes from
/// the stored offsets and the tables equal the oracle.
#[tokio::test]
async fn a_final_snapshot_postgres_refuses_ends_the_stop_in_time_with_an_error_and_loses_nothing() {
    let p = Pipeline::new().await;
    p.produce(&["--clients", "1,2,3", "--count", "400", "--seed", "53"]);
    let lines = Oracle::from_dir(&p.logs).expect("oracle").lines;
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port = harness::broker::free_port();
    // No periodic snapshot: the final one is the only write.
    let settings = [("TRADEFLOW_SNAPSHOT_INTERVAL_MS", "3600000"), ("TRADEFLOW_AGGREGATOR_SHUTDOWN_SECS", "3")];
    let mut aggregator = p.start_with("aggregator", port, &settings);
    eventually("the aggregator to apply every line", LONG, || async {
        metric(port, "tradeflow_aggregator_records_total").await.filter(|&n| n >= lines).map(|_| ())
    })
    .await;
    let admin = sqlx::PgPool::connect(&harness::postgres::server_url()).await.expect("admin connection");
    let close = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", p.db.name);
    sqlx::query(&close).execute(&admin).await.expect("close the database");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&p.db.name)
    .execute(&admin)
    .await
    .expect("end its sessions");

    let stopping = std::time::Instant::now();
    let clean = aggregator.terminate(Duration::from_secs(10));
    let took = stopping.elapsed();
    let log = std::fs::read_to_string(p.root.join("aggregator.log")).unwrap_or_default();
    assert!(!clean, "a stop without its final snapshot exited 0 (took {took:?}); its log:\n{log}");
    assert!(
        took < Duration::from_secs(9),
        "killed at the deadline rather than exiting: took {took:?}; its log:\n{log}"
    );
    assert!(log.contains("the final snapshot was not written"), "{log}");

    let open = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", p.db.name);
    sqlx::query(&open).execute(&admin).await.expect("open the database");
    let _aggregator = p.start("aggregator", harness::broker::free_port());
    p.converges().await;
    p.cleanup();
}

#[tokio::test]
async fn postgres_restarted_during_snapshots_loses_and_double_counts_nothing() {
    let pg = harness::postgres::ThrowawayPostgres::start();
    let p = Pipeline::on_server(&pg.url()).await;
    let mut producer = Service::producer(
        &["--clients", "1,2,3,4", "--rate", "400", "--count", "6000", "--seed", "23"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port = harness::broker::free_port();
    let mut env = p.env();
    env.push(("TRADEFLOW_AGGREGATOR_METRICS_ADDR", format!("127.0.0.1:{port}")));
    env.retain(|(k, _)| *k != "TRADEFLOW_SNAPSHOT_INTERVAL_MS");
    env.push(("TRADEFLOW_SNAPSHOT_INTERVAL_MS", "20".into()));
    let _aggregator = Service::start("aggregator", &["aggregator"], &env, &p.root);
    for round in 1..=3u64 {
        // Snapshots run every 20 ms, so an immediate restart lands during or between them.
        eventually("snapshots before the restart", LONG, || async {
            metric(port, "tradeflow_aggregator_snapshots_total").await.filter(|&n| n >= round * 10).map(|_| ())
        })
        .await;
        pg.restart();
    }
    producer.exited("the producer to finish", LONG).await;
    p.converges().await;
    p.cleanup();
}

#[tokio::test]
async fn a_crash_right_after_a_snapshot_commit_loses_and_double_counts_nothing() {
    let p = Pipeline::new().await;
    let mut producer = Service::producer(
        &["--clients", "1,2,3", "--rate", "400", "--count", "100000", "--seed", "29"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    // Each partition's snapshot counts: with three clients, a few commits happen per interval.
    for crash_after in [2u64, 4, 3] {
        let mut env = p.env();
        env.push(("TRADEFLOW_AGGREGATOR_METRICS_ADDR", format!("127.0.0.1:{}", harness::broker::free_port())));
        env.push(("TRADEFLOW_CRASH_AFTER_SNAPSHOTS", crash_after.to_string()));
        let mut aggregator = Service::start("aggregator", &["aggregator"], &env, &p.root);
        eventually("the aggregator to abort after its commit", LONG, || {
            let running = aggregator.running();
            async move { (!running).then_some(()) }
        })
        .await;
    }
    let log = std::fs::read_to_string(p.root.join("aggregator.log")).expect("log");
    assert_eq!(log.matches("aborting right after the commit").count(), 3);
    let _aggregator = p.start("aggregator", harness::broker::free_port());
    assert!(producer.terminate(Duration::from_secs(30)), "the producer did not stop cleanly");
    p.converges().await;
    p.cleanup();
}
