//! Ingestor: real files, the real broker, the `tradeflow ingestor` process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::log_format::{LogFileName, parse_line};
use tradeflow_core::partition::partition_for;
use tradeflow_core::record::{self, TradeId, TradeRecord};
use tradeflow_core::topics::PartitionArgs;

use crate::harness::{self, Broker, KafkaCluster, Record, Service, TestTopics, TopicReader, eventually};

const LONG: Duration = Duration::from_secs(120);

/// A log directory, a state directory and topics of the test's own (also used by `odd_input`).
pub(crate) struct Setup {
    pub(crate) root: PathBuf,
    pub(crate) logs: PathBuf,
    state: PathBuf,
    topics: TestTopics,
    pub(crate) metrics_port: u16,
}

impl Setup {
    pub(crate) async fn new() -> Self {
        Self::on(Broker::kafka()).await
    }

    async fn on(kafka: KafkaArgs) -> Self {
        let root = harness::temp_dir();
        let topics = TestTopics::create(kafka, PartitionArgs::default()).await;
        Self {
            logs: root.join("logs"),
            state: root.join("state"),
            root,
            topics,
            metrics_port: harness::broker::free_port(),
        }
    }

    pub(crate) fn ingestor(&self) -> Service {
        self.ingestor_with(&[])
    }

    fn ingestor_with(&self, extra: &[&str]) -> Service {
        let mut args = vec!["ingestor"];
        args.extend_from_slice(extra);
        Service::start("ingestor", &args, &self.env(), &self.root)
    }

    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KAFKA_BROKERS", self.topics.kafka.brokers.clone()),
            ("TRADEFLOW_TOPIC_PREFIX", self.topics.prefix.clone()),
            ("TRADE_LOG_DIR", self.logs.display().to_string()),
            ("TRADEFLOW_INGESTOR_STATE", self.state.display().to_string()),
            ("TRADEFLOW_INGESTOR_METRICS_ADDR", format!("127.0.0.1:{}", self.metrics_port)),
            ("RUST_LOG", "info".into()),
        ]
    }

    fn produce(&self, args: &[&str]) {
        Service::produce_logs(args, &self.logs);
    }

    pub(crate) fn trades(&self) -> TopicReader {
        TopicReader::new(&self.topics.kafka, &self.topics.topics.trades)
    }

    pub(crate) fn dlq(&self) -> TopicReader {
        TopicReader::new(&self.topics.kafka, &self.topics.topics.trades_dlq)
    }

    pub(crate) fn file(&self, client: &str, date: &str) -> PathBuf {
        self.logs.join(format!("tradeLog_client{client}.{date}.log"))
    }

    pub(crate) async fn metric(&self, name: &str) -> Option<u64> {
        harness::http::metric(self.metrics_port, name).await
    }

    pub(crate) fn cleanup(self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Every complete line of every log file in `dir`: (client, date, offset) → bytes.
fn lines_of(dir: &Path) -> BTreeMap<(String, String, u64), Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("log dir") {
        let entry = entry.expect("entry");
        let Ok(name) = LogFileName::parse(&entry.file_name().to_string_lossy()) else { continue };
        let bytes = std::fs::read(entry.path()).expect("read log");
        let mut offset = 0u64;
        let mut rest = &bytes[..];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            out.insert((name.client.to_string(), name.date.to_string(), offset), rest[..i].to_vec());
            offset += i as u64 + 1;
            rest = &rest[i + 1..];
        }
    }
    out
}

/// Reads `trades` until every line of `expected` is there (by identity; re-sends allowed), then
/// checks each was published as written.
async fn read_every_line(s: &Setup, expected: &BTreeMap<(String, String, u64), Vec<u8>>, what: &str) {
    let mut reader = s.trades();
    reader
        .read_until(what, Duration::from_secs(180), |records| {
            records.iter().map(|r| id_key(&trade_record(r).id)).collect::<HashSet<_>>().len() >= expected.len()
        })
        .await;
    assert_all_published(&reader.records, expected);
}

fn trade_record(r: &Record) -> TradeRecord {
    TradeRecord::from_json(&r.payload).expect("a trade record")
}

fn id_key(id: &TradeId) -> (String, String, u64) {
    (id.client.to_string(), id.date.to_string(), id.offset)
}

/// Checks that `records` hold every line of `expected` (generation 0), on the right partition,
/// equal to the parsed line; a duplicate must carry its original's identity and content.
fn assert_all_published(records: &[Record], expected: &BTreeMap<(String, String, u64), Vec<u8>>) {
    let mut seen: HashMap<(String, String, u64), TradeRecord> = HashMap::new();
    for r in records {
        let rec = trade_record(r);
        let client = rec.id.client.to_string();
        assert_eq!(r.key, client.as_bytes());
        assert_eq!(r.partition, partition_for(client.as_bytes(), 12), "client {client} on the wrong partition");
        let key = id_key(&rec.id);
        let line = expected.get(&key).unwrap_or_else(|| panic!("record {} is no line of the files", rec.id));
        assert_eq!(rec.trade, parse_line(line).expect("line parses"), "record {} differs from its line", rec.id);
        if let Some(previous) = seen.insert(key, rec.clone()) {
            assert_eq!(previous, rec, "a duplicate differs from its original");
        }
    }
    assert_eq!(seen.len(), expected.len(), "lines missing from the topic");
}

#[tokio::test]
async fn golden_every_line_once_on_its_clients_partition() {
    let s = Setup::new().await;
    s.produce(&["--clients", "1,2,33", "--count", "2000", "--seed", "11", "--start", "2026-11-20T09:00:00"]);
    let _ingestor = s.ingestor();
    let expected = lines_of(&s.logs);
    assert_eq!(expected.len(), 6000);
    let mut reader = s.trades();
    reader.read_n(6000, LONG).await;
    assert_eq!(reader.records.len(), 6000, "more records than lines");
    assert_all_published(&reader.records, &expected);
    let ids: HashSet<String> = reader.records.iter().map(|r| trade_record(r).id.to_string()).collect();
    assert_eq!(ids.len(), 6000, "identities are not unique");
    // The cursor catches up and the metrics say so.
    let published = eventually("metrics", Duration::from_secs(30), || async {
        s.metric("tradeflow_ingestor_lines_published_total").await.filter(|&n| n == 6000)
    })
    .await;
    assert_eq!(published, 6000);
    assert_eq!(harness::http::get(s.metrics_port, "/healthz").await.as_deref(), Some("ok\n"));
    s.cleanup();
}

#[tokio::test]
async fn appends_are_published_as_they_arrive_and_partial_lines_wait_across_a_restart() {
    let s = Setup::new().await;
    std::fs::create_dir_all(&s.logs).expect("logs");
    let path = s.file("5", "2026.11.22");
    let line = |i: u32| {
        format!(
            "Activity Time:2026.11.22 09:30:{:02}.000000001|Symbol:AAPL|Side:B|Price:1.{i:02}|Quantity:{i}|AccountID:CQ01\n",
            i % 60
        )
    };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("log");
    f.write_all(line(1).as_bytes()).expect("write");
    let mut ingestor = s.ingestor();
    let mut reader = s.trades();
    reader.read_n(1, LONG).await;
    // Half a line: nothing is published until its newline arrives, even across a restart.
    let second = line(2);
    let (head, tail) = second.split_at(40);
    f.write_all(head.as_bytes()).expect("write");
    eventually("the cursor at the end of line 1", Duration::from_secs(30), || async {
        let cursor = std::fs::read_to_string(s.state.join("tradeLog_client5.2026.11.22.log.cursor")).ok()?;
        cursor.contains(&format!("\"offset\":{}", line(1).len())).then_some(())
    })
    .await;
    ingestor.kill9();
    f.write_all(tail.as_bytes()).expect("write");
    let _ingestor = s.ingestor();
    reader.read_n(2, LONG).await;
    let rec = trade_record(&reader.records[1]);
    assert_eq!(rec.trade.quantity, 2);
    assert_eq!(rec.trade.price.to_string(), "1.02");
    assert_eq!(rec.id.offset, line(1).len() as u64);
    // And nothing else arrives: append a third line and see exactly three records.
    f.write_all(line(3).as_bytes()).expect("write");
    reader.read_n(3, LONG).await;
    let quantities: Vec<i64> = reader.records.iter().map(|r| trade_record(r).trade.quantity).collect();
    assert_eq!(quantities, [1, 2, 3]);
    s.cleanup();
}

#[tokio::test]
async fn kill_9_at_random_points_loses_nothing() {
    let s = Setup::new().await;
    // A live producer writing fast while the ingestor is killed and restarted.
    let producer =
        Service::producer(&["--clients", "1,2", "--rate", "1000", "--count", "12000", "--seed", "3"], &s.logs, &s.root);
    let mut producer = producer;
    let mut ingestor = s.ingestor();
    let mut kills = 0;
    for round in 0..4u64 {
        // Kill at a point chosen by progress, not by time: after this process published a few
        // hundred lines (a different number each round and run).
        let target = 200 + (round * 137 + std::process::id() as u64) % 600;
        let reached = eventually("progress before the kill", LONG, || {
            let producing = producer.running();
            let s = &s;
            async move {
                let n = s.metric("tradeflow_ingestor_lines_published_total").await.unwrap_or(0);
                if n >= target {
                    Some(true)
                } else if !producing {
                    Some(false)
                } else {
                    None
                }
            }
        })
        .await;
        if !reached {
            break;
        }
        ingestor.kill9();
        kills += 1;
        ingestor = s.ingestor();
    }
    assert!(kills >= 3, "only {kills} kills happened mid-stream");
    producer.exited("the producer to finish", LONG).await;
    let expected = lines_of(&s.logs);
    assert_eq!(expected.len(), 24000);
    let mut reader = s.trades();
    reader
        .read_until("every line", LONG, |records| {
            records.iter().map(|r| id_key(&trade_record(r).id)).collect::<HashSet<_>>().len() >= 24000
        })
        .await;
    assert_all_published(&reader.records, &expected);
    drop(ingestor);
    s.cleanup();
}

#[tokio::test]
async fn rollover_while_down_publishes_both_days() {
    let s = Setup::new().await;
    s.produce(&["--clients", "8", "--count", "300", "--seed", "1", "--start", "2026-11-21T23:59:50", "--rate", "20"]);
    let mut ingestor = s.ingestor();
    let mut reader = s.trades();
    reader.read_n(200, LONG).await;
    ingestor.terminate(Duration::from_secs(30));
    // While it is down: the rest of day one and a new day two (the producer continues the stream).
    let day1 = s.file("8", "2026.11.21");
    let before = std::fs::metadata(&day1).expect("day one").len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&day1)
        .and_then(|mut f| {
            f.write_all(
                b"Activity Time:2026.11.21 23:59:59.999999999|Symbol:FB|Side:S|Price:2|Quantity:3|AccountID:CQ02\n",
            )
        })
        .expect("append day one");
    s.produce(&["--clients", "8", "--count", "200", "--seed", "2", "--start", "2026-11-22T00:00:00", "--rate", "20"]);
    assert!(std::fs::metadata(&day1).expect("day one").len() > before);
    let _ingestor = s.ingestor();
    let expected = lines_of(&s.logs);
    assert_eq!(expected.len(), 300 + 1 + 200);
    reader
        .read_until("both days", LONG, |records| {
            records.iter().map(|r| id_key(&trade_record(r).id)).collect::<HashSet<_>>().len() >= expected.len()
        })
        .await;
    assert_all_published(&reader.records, &expected);
    let dates: HashSet<String> = reader.records.iter().map(|r| trade_record(r).id.date.to_string()).collect();
    assert_eq!(dates, HashSet::from(["2026-11-21".to_owned(), "2026-11-22".to_owned()]));
    s.cleanup();
}

#[tokio::test]
async fn truncated_and_recreated_files_are_read_again_from_the_start() {
    let s = Setup::new().await;
    std::fs::create_dir_all(&s.logs).expect("logs");
    let line = |sym: &str, q: u32| {
        format!("Activity Time:2026.11.22 10:00:00.{q:09}|Symbol:{sym}|Side:B|Price:10|Quantity:{q}|AccountID:CQ01\n")
    };
    let path = s.file("4", "2026.11.22");
    let first: String = (1..=5).map(|q| line("AAPL", q)).collect();
    std::fs::write(&path, &first).expect("write");
    let _ingestor = s.ingestor();
    let mut reader = s.trades();
    reader.read_n(5, LONG).await;
    // Truncate and rewrite with longer content (the size alone would not show the truncation).
    let rewritten: String = (1..=8).map(|q| line("GOOG", q)).collect();
    std::fs::write(&path, &rewritten).expect("rewrite");
    reader.read_n(13, LONG).await;
    // Delete and recreate.
    std::fs::remove_file(&path).expect("delete");
    let recreated: String = (1..=3).map(|q| line("AMZN", q)).collect();
    std::fs::write(&path, &recreated).expect("recreate");
    reader.read_n(16, LONG).await;
    let records: Vec<TradeRecord> = reader.records.iter().map(trade_record).collect();
    let by_gen = |g: u32| -> Vec<(String, i64)> {
        records
            .iter()
            .filter(|r| r.id.generation == g)
            .map(|r| (r.trade.symbol.to_string(), r.trade.quantity))
            .collect()
    };
    assert_eq!(by_gen(0), (1..=5).map(|q| ("AAPL".to_owned(), q)).collect::<Vec<_>>());
    assert_eq!(by_gen(1), (1..=8).map(|q| ("GOOG".to_owned(), q)).collect::<Vec<_>>());
    assert_eq!(by_gen(2), (1..=3).map(|q| ("AMZN".to_owned(), q)).collect::<Vec<_>>());
    let ids: HashSet<String> = records.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(ids.len(), 16, "new content at an old offset must get a new identity");
    s.cleanup();
}

#[tokio::test]
async fn bad_lines_go_to_the_dead_letter_topic_and_the_rest_is_published() {
    let s = Setup::new().await;
    std::fs::create_dir_all(&s.logs).expect("logs");
    let good = |q: u32| {
        format!("Activity Time:2026.11.22 10:00:00.1|Symbol:FB|Side:S|Price:5.5|Quantity:{q}|AccountID:CQ03\n")
    };
    let valid = "Activity Time:2026.11.22 10:00:00.1|Symbol:FB|Side:S|Price:5.5|Quantity:1|AccountID:CQ03";
    let without = |key: &str| valid.split('|').filter(|f| !f.starts_with(key)).collect::<Vec<_>>().join("|");
    let mut bad: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "empty_line"),
        (b"garbage without separators".to_vec(), "missing_separator"),
        (without("Activity Time").into_bytes(), "missing_field"),
        (without("Symbol").into_bytes(), "missing_field"),
        (without("Side").into_bytes(), "missing_field"),
        (without("Price").into_bytes(), "missing_field"),
        (without("Quantity").into_bytes(), "missing_field"),
        (without("AccountID").into_bytes(), "missing_field"),
        (valid.replace("Side:S", "Side:Q").into_bytes(), "bad_value"),
        (valid.replace("Price:5.5", "Price:-5.5").into_bytes(), "bad_value"),
        (valid.replace("Quantity:1", "Quantity:1.5").into_bytes(), "bad_value"),
        (valid.replace("10:00:00.1", "25:00:00.1").into_bytes(), "bad_value"),
        (valid.replace("Symbol:FB", "Symbol:").into_bytes(), "bad_value"),
        (format!("{valid}|OrderNo:x").into_bytes(), "bad_value"),
        (format!("{valid}|Side:B").into_bytes(), "duplicate_field"),
        ([b"Activity Time:2026.11.22 10:00:00.1|Symbol:F\xffB".as_slice(), b"|Side:S"].concat(), "invalid_utf8"),
    ];
    let huge = vec![b'x'; 10 * 1024 * 1024];
    bad.push((huge.clone(), "line_too_long"));
    let mut content = Vec::new();
    for (i, (line, _)) in bad.iter().enumerate() {
        content.extend_from_slice(good(i as u32).as_bytes());
        content.extend_from_slice(line);
        content.push(b'\n');
    }
    content.extend_from_slice(good(99).as_bytes());
    std::fs::write(s.file("6", "2026.11.22"), &content).expect("write");
    let ingestor = s.ingestor();
    let mut trades = s.trades();
    trades.read_n(bad.len() + 1, LONG).await;
    let quantities: Vec<i64> = trades.records.iter().map(|r| trade_record(r).trade.quantity).collect();
    let mut expected: Vec<i64> = (0..bad.len() as i64).collect();
    expected.push(99);
    assert_eq!(quantities, expected, "every good line, in order");
    let mut dlq = s.dlq();
    dlq.read_n(bad.len(), LONG).await;
    assert_eq!(dlq.records.len(), bad.len());
    for (record, (line, code)) in dlq.records.iter().zip(&bad) {
        assert_eq!(record.headers.get(record::DLQ_REASON_CODE).map(String::as_str), Some(*code));
        assert!(!record.headers[record::DLQ_REASON].is_empty());
        assert_eq!(record.headers[record::DLQ_FILE], "tradeLog_client6.2026.11.22.log");
        assert_eq!(record.key, b"6");
        let offset: usize = record.headers[record::DLQ_OFFSET].parse().expect("offset");
        assert_eq!(&content[offset..offset + record.payload.len()], record.payload.as_slice(), "raw bytes, lossless");
        if *code == "line_too_long" {
            // The head a broker with default limits accepts (measured here: 900 KiB), and the pointer.
            assert_eq!(record.payload.len(), tradeflow_core::edge::DEAD_LETTER_VALUE_MAX);
            assert_eq!(record.headers[record::DLQ_LINE_LEN], huge.len().to_string());
            assert_eq!(record.headers[record::DLQ_TRUNCATED], "true");
        } else {
            assert_eq!(&record.payload, line);
        }
    }
    let missing = &dlq.records[2];
    assert!(missing.headers[record::DLQ_REASON].contains("Activity Time"), "{:?}", missing.headers);
    let peak = ingestor.peak_rss_kib().expect("peak rss");
    assert!(peak < 150 * 1024, "ingestor peak memory {peak} KiB: the 10 MB line was held whole?");
    let counted = eventually("dead-letter metrics", Duration::from_secs(30), || async {
        let n: i64 =
            harness::http::labelled(s.metrics_port, "tradeflow_ingestor_lines_dead_lettered_total").await?.iter().sum();
        (n == bad.len() as i64).then_some(n as u64)
    })
    .await;
    assert_eq!(counted, bad.len() as u64);
    s.cleanup();
}

#[tokio::test]
async fn broker_down_for_30_seconds_loses_nothing() {
    let mut broker = KafkaCluster::start(1);
    let s = Setup::on(broker.kafka()).await;
    let producer =
        Service::producer(&["--clients", "1,2,3", "--rate", "200", "--count", "8000", "--seed", "9"], &s.logs, &s.root);
    let _ingestor = s.ingestor();
    eventually("some lines published", LONG, || async {
        s.metric("tradeflow_ingestor_lines_published_total").await.filter(|&n| n >= 1000).map(|_| ())
    })
    .await;
    broker.kill9(0);
    // The outage itself: 30 s without a broker while the producer keeps writing.
    tokio::time::sleep(Duration::from_secs(30)).await;
    broker.restart(0);
    let mut producer = producer;
    producer.exited("the producer to finish", LONG).await;
    let expected = lines_of(&s.logs);
    assert_eq!(expected.len(), 24000);
    read_every_line(&s, &expected, "every line after the outage").await;
    s.cleanup();
}

/// SIGTERM while the broker is down and the producer's queue is full: the ingestor used to wait
/// for room forever (a newcomer's trial: over 100 s, until kill -9). Now the waiting send gives
/// up, the acknowledged cursor is saved, the process exits, and the next start sends the rest.
#[tokio::test]
async fn a_stop_with_the_broker_down_and_the_queue_full_exits_and_loses_nothing() {
    let mut broker = KafkaCluster::start(1);
    let s = Setup::on(broker.kafka()).await;
    let mut ingestor = s.ingestor_with(&["--queue-kb", "1024"]);
    eventually("the ingestor serving metrics", LONG, || s.metric("tradeflow_ingestor_lines_read_total")).await;
    broker.kill9(0);
    // ~12,000 records of ~520 bytes: several times the 1 MiB queue.
    s.produce(&["--clients", "1,2,3", "--rate", "1000000", "--count", "4000", "--seed", "5"]);
    eventually("the queue full (reading paused)", LONG, || async {
        s.metric("tradeflow_ingestor_lines_read_total").await.filter(|&n| n >= 1500).map(|_| ())
    })
    .await;
    let read = s.metric("tradeflow_ingestor_lines_read_total").await.unwrap_or(0);
    assert!(read < 12_000, "the queue should have paused reading, read {read}");
    let stopped = std::time::Instant::now();
    let _ = std::process::Command::new("kill").args(["-TERM", &ingestor.pid().to_string()]).status();
    // Each reader waits `--drain-secs` (7) for acknowledgements, then the producer 2 s more: within
    // `docker compose stop`'s 10 s grace (the bound leaves room for a loaded machine).
    ingestor.exited("the ingestor to exit after SIGTERM", Duration::from_secs(60)).await;
    assert!(stopped.elapsed() < Duration::from_secs(20), "exit took {:?}", stopped.elapsed());
    broker.restart(0);
    let _again = s.ingestor_with(&["--queue-kb", "1024"]);
    let expected = lines_of(&s.logs);
    assert_eq!(expected.len(), 12_000);
    read_every_line(&s, &expected, "every line after the restart").await;
    s.cleanup();
}

#[tokio::test]
async fn backfill_republishes_a_date_range_with_the_same_identities() {
    let s = Setup::new().await;
    s.produce(&[
        "--clients",
        "7",
        "--rate",
        "1",
        "--days",
        "3",
        "--seed",
        "4",
        "--start",
        "2026-11-01T23:50:00",
        "--count",
        "1800",
    ]);
    // Live ingest first, to compare identities.
    let mut ingestor = s.ingestor();
    let expected = lines_of(&s.logs);
    let mut reader = s.trades();
    reader.read_n(expected.len(), LONG).await;
    ingestor.terminate(Duration::from_secs(30));
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["ingestor", "--backfill", "--from", "2026-11-02", "--to", "2026-11-02"])
        .envs(s.env())
        .output()
        .expect("backfill");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let day2 = expected.keys().filter(|(_, d, _)| d == "2026-11-02").count();
    assert!(day2 > 0 && day2 < expected.len());
    reader.read_n(expected.len() + day2, LONG).await;
    let again: Vec<TradeRecord> = reader.records[expected.len()..].iter().map(trade_record).collect();
    assert!(again.iter().all(|r| r.id.date.to_string() == "2026-11-02"));
    let first: HashMap<String, TradeRecord> =
        reader.records[..expected.len()].iter().map(trade_record).map(|r| (r.id.to_string(), r)).collect();
    for r in &again {
        assert_eq!(first.get(&r.id.to_string()), Some(r), "backfill changed the identity or content of {}", r.id);
    }
    s.cleanup();
}
