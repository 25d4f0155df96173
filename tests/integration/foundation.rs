//! Foundation: the real broker, the real Postgres, the producer's files and the oracle.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tradeflow_core::ClientId;
use tradeflow_core::log_format::parse_line;
use tradeflow_core::partition::partition_for;
use tradeflow_core::price::PriceTick;
use tradeflow_producer::generator::{Rate, TradeGenerator};

use crate::harness::{self, TestDatabase, TestTopics, TopicReader, eventually};

/// Reads `n` records of `topic` from the beginning: (key, partition, payload).
async fn consume_n(kafka: &tradeflow_core::kafka::KafkaArgs, topic: &str, n: usize) -> Vec<(String, i32, Vec<u8>)> {
    let mut reader = TopicReader::new(kafka, topic);
    reader.read_n(n, Duration::from_secs(60)).await;
    reader.records.into_iter().map(|r| (String::from_utf8(r.key).expect("utf8 key"), r.partition, r.payload)).collect()
}

#[tokio::test]
async fn keyed_records_land_on_the_java_murmur2_partition() {
    let t = TestTopics::shared().await;
    let producer: FutureProducer = t
        .kafka
        .client_config()
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let keys: Vec<String> = (0..300).map(|i| if i % 3 == 0 { format!("client-{i}") } else { i.to_string() }).collect();
    let sends = keys.iter().map(|k| {
        let producer = &producer;
        let topic = &t.topics.trades;
        async move {
            let record = FutureRecord::to(topic).key(k.as_bytes()).payload(k.as_bytes());
            producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("delivered")
        }
    });
    let delivered = futures::future::join_all(sends).await;
    for (key, delivery) in keys.iter().zip(&delivered) {
        assert_eq!(delivery.partition, partition_for(key.as_bytes(), 12), "key {key}");
    }
    let used: std::collections::BTreeSet<i32> = delivered.iter().map(|d| d.partition).collect();
    assert!(used.len() > 6, "300 keys spread over few partitions: {used:?}");

    let consumed = consume_n(&t.kafka, &t.topics.trades, keys.len()).await;
    let mut seen: HashMap<String, i32> = HashMap::new();
    for (key, partition, payload) in consumed {
        assert_eq!(payload, key.as_bytes());
        assert_eq!(partition, partition_for(key.as_bytes(), 12), "consumed key {key}");
        assert!(seen.insert(key, partition).is_none(), "a record arrived twice");
    }
    assert_eq!(seen.len(), keys.len());
}

#[tokio::test]
async fn price_feed_publishes_every_symbol_keyed_by_symbol() {
    let t = TestTopics::shared().await;
    let status = Command::new(harness::tradeflow_bin())
        .args(["prices", "--count", "3", "--interval-ms", "10", "--seed", "5"])
        .env("KAFKA_BROKERS", &t.kafka.brokers)
        .env("TRADEFLOW_TOPIC_PREFIX", &t.prefix)
        .status()
        .expect("run tradeflow prices");
    assert!(status.success());
    let ticks = consume_n(&t.kafka, &t.topics.prices, 15).await;
    let mut per_symbol: BTreeMap<String, usize> = BTreeMap::new();
    for (key, partition, payload) in ticks {
        let tick = PriceTick::from_json(&payload).expect("a price tick");
        assert_eq!(tick.symbol, key);
        assert_eq!(partition, partition_for(key.as_bytes(), 3));
        assert!(tick.price > rust_decimal::Decimal::ZERO);
        *per_symbol.entry(key).or_default() += 1;
    }
    assert_eq!(per_symbol.len(), 5, "{per_symbol:?}");
    assert!(per_symbol.values().all(|&n| n == 3), "{per_symbol:?}");
}

#[tokio::test]
async fn a_test_database_is_created_and_dropped() {
    let db = TestDatabase::create().await;
    let name = db.name.clone();
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&db.pool).await.expect("query");
    assert_eq!(one, 1);
    let current: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&db.pool).await.expect("query");
    assert_eq!(current, name);
    drop(db);
    let admin = sqlx::PgPool::connect(&harness::postgres::server_url()).await.expect("admin");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&admin)
        .await
        .expect("query");
    assert!(!exists, "database {name} still exists after drop");
}

#[tokio::test]
async fn producer_files_parse_back_to_exactly_the_generated_trades() {
    let dir = tempfile_dir();
    let status = Command::new(harness::tradeflow_bin())
        .args(["producer", "--clients", "1,22", "--count", "2500", "--seed", "7", "--start", "2026-11-01T23:58:00"])
        .arg("--dir")
        .arg(&dir)
        .status()
        .expect("run tradeflow producer");
    assert!(status.success());
    let start = tradeflow_producer::config::parse_start("2026-11-01T23:58:00").expect("start");
    for cid in ["1", "22"] {
        let client = ClientId::parse(cid).expect("client");
        let mut expected = TradeGenerator::new(&client, 7, Rate::Mock, start);
        let mut parsed = Vec::new();
        for date in ["2026.11.01", "2026.11.02"] {
            let bytes = std::fs::read(dir.join(format!("tradeLog_client{cid}.{date}.log"))).expect("log file");
            assert_eq!(bytes.last(), Some(&b'\n'));
            for line in bytes[..bytes.len() - 1].split(|&b| b == b'\n') {
                parsed.push(parse_line(line).expect("producer lines parse"));
            }
        }
        assert_eq!(parsed.len(), 2500);
        for trade in parsed {
            assert_eq!(trade, expected.next_trade());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn oracle_command_matches_a_hand_computed_example() {
    let dir = tempfile_dir();
    std::fs::write(
        dir.join("tradeLog_client7.2026.11.22.log"),
        "Activity Time:2026.11.22 09:30:00.1|Symbol:AAPL|Side:B|Price:100.10|Quantity:10|AccountID:CQ01\n\
         Activity Time:2026.11.22 09:30:00.2|Symbol:AAPL|Side:B|Price:100.40|Quantity:20|AccountID:CQ01\n\
         Activity Time:2026.11.22 09:30:00.3|Symbol:AAPL|Side:S|Price:101|Quantity:5|AccountID:CQ01\n\
         Activity Time:2026.11.22 09:30:00.4|Symbol:AAPL|Side:S|Price:oops|Quantity:5|AccountID:CQ01\n\
         Activity Time:2026.11.23 00:00:00.0|Symbol:AAPL|Side:S|Price:1|Quantity:1|AccountID:CQ01\n",
    )
    .expect("write log");
    let out = Command::new(harness::tradeflow_bin())
        .args(["oracle", "--format", "json", "--logs"])
        .arg(&dir)
        .output()
        .expect("run tradeflow oracle");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json rows");
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r["trade_date"], "2026-11-22");
    assert_eq!(r["client_id"], "7");
    assert_eq!(r["trade_count"], 3);
    assert_eq!((r["buy_qty"].as_i64(), r["sell_qty"].as_i64()), (Some(30), Some(5)));
    assert_eq!(r["net_qty"], 25);
    assert_eq!(r["buy_notional"], "3009.00");
    assert_eq!(r["sell_notional"], "505");
    assert_eq!(r["avg_buy_price"], "100.30");
    assert_eq!(r["avg_sell_price"], "101");
    assert_eq!(r["last_price"], "101");
    assert_eq!(r["market_value"], serde_json::Value::Null);
    assert_eq!(rows[1]["trade_date"], "2026-11-23");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn topics_command_is_idempotent() {
    let prefix = harness::unique("t") + ".";
    let run = || {
        Command::new(harness::tradeflow_bin())
            .args(["topics", "--trades-partitions", "4"])
            .env("KAFKA_BROKERS", crate::harness::Broker::shared())
            .env("TRADEFLOW_TOPIC_PREFIX", &prefix)
            .output()
            .expect("run tradeflow topics")
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let first = String::from_utf8_lossy(&first.stdout).to_string();
    assert_eq!(first.matches("created").count(), 5, "{first}"); // trades, trades.dlq, trades.refused, prices, summaries
    assert!(first.contains(&format!("{prefix}trades\tpartitions=4")), "{first}");
    // The aggregator group's coordinator answered (a fresh cluster's offsets topic exists now).
    assert!(first.contains("ready\tgroup coordinator for tradeflow-aggregator\t"), "{first}");
    let second = run();
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout).matches("exists").count(), 5);
    // And the broker agrees on the partition count.
    let metadata = eventually("topic metadata", Duration::from_secs(20), || {
        let prefix = prefix.clone();
        async move {
            let c: StreamConsumer = crate::harness::Broker::kafka().client_config().create().ok()?;
            let md = c.fetch_metadata(Some(&format!("{prefix}trades")), Duration::from_secs(5)).ok()?;
            let n = md.topics().first()?.partitions().len();
            (n > 0).then_some(n)
        }
    })
    .await;
    assert_eq!(metadata, 4);
}

#[tokio::test]
async fn topics_command_checks_existing_topics_and_refuses_broken_guarantees() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let prefix = harness::unique("chk") + ".";
    let run = |prefix: &str, extra: &[&str]| {
        let out = Command::new(harness::tradeflow_bin())
            .arg("topics")
            .args(extra)
            .env("KAFKA_BROKERS", crate::harness::Broker::shared())
            .env("TRADEFLOW_TOPIC_PREFIX", prefix)
            .output()
            .expect("run tradeflow topics");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Made by hand, wrongly: `summaries` not compacted, `trades` with 3 partitions.
    let admin: AdminClient<_> = crate::harness::Broker::kafka().client_config().create().expect("admin");
    let (summaries, trades) = (format!("{prefix}summaries"), format!("{prefix}trades"));
    let topics = [
        NewTopic::new(&summaries, 1, TopicReplication::Fixed(1)),
        NewTopic::new(&trades, 3, TopicReplication::Fixed(1)),
    ];
    for result in admin.create_topics(&topics, &AdminOptions::new()).await.expect("create") {
        result.expect("topic created");
    }
    let (ok, stdout, stderr) = run(&prefix, &[]);
    assert!(!ok, "a non-compacted summaries topic was accepted: {stdout}");
    assert!(
        stdout.contains(&format!("error\t{prefix}summaries\tcleanup.policy=delete but it must be compacted")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("warning\t{prefix}trades\t3 partitions, tradeflow creates 12")), "{stdout}");
    assert!(stderr.contains("break tradeflow's guarantees"), "{stderr}");
    // Created right, with the production profile's min.insync.replicas asked for: clean.
    let good = harness::unique("chk") + ".";
    let (ok, stdout, stderr) = run(&good, &["--min-insync-replicas", "1"]);
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, _) = run(&good, &["--min-insync-replicas", "1"]);
    assert!(ok && !stdout.contains("error") && !stdout.contains("warning"), "{stdout}");
    // Asked for 2 on topics made with 1: a warning, not an error.
    let (ok, stdout, _) = run(&good, &["--min-insync-replicas", "2"]);
    assert!(ok && stdout.contains("warning") && stdout.contains("min.insync.replicas=1, asked for 2"), "{stdout}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(harness::unique("tradeflow-test-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
