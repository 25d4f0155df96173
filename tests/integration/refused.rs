//! Odd input never stalls a partition (issue 23, part B): what the aggregator refuses is set aside
//! on `trades.refused` with its identity and reason, counted, and every other client on the same
//! partition keeps being persisted; a price tick from the future is refused and cannot freeze a
//! mark; a `trades` topic recreated under stored offsets is refused loudly until it is rebased.

use std::path::Path;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tradeflow_aggregator::refused;
use tradeflow_aggregator::verify::{compare, current_rows};
use tradeflow_core::ClientId;
use tradeflow_core::log_format::LogFileName;
use tradeflow_core::oracle::Oracle;
use tradeflow_core::partition::partition_for;
use tradeflow_core::price::PriceTick;
use tradeflow_core::record::{TradeId, TradeRecord};
use tradeflow_core::summary::{Position, SummaryKey};
use tradeflow_core::trade::{Side, Trade};

use crate::aggregator::Pipeline;
use crate::harness::http::{get, labelled, request};
use crate::harness::{self, Record, TopicReader, eventually};

const LONG: Duration = Duration::from_secs(120);

/// Two client ids whose trades share one `trades` partition (of 12), and that partition.
fn clients_sharing_a_partition() -> (String, String, i32) {
    let a = "41".to_owned();
    let p = partition_for(a.as_bytes(), 12);
    let b = (42..10_000).map(|c| c.to_string()).find(|c| partition_for(c.as_bytes(), 12) == p).expect("a neighbour");
    (a, b, p)
}

fn producer(p: &Pipeline) -> FutureProducer {
    p.topics.kafka.client_config().set("partitioner", "murmur2_random").create().expect("producer")
}

async fn send(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    let record = FutureRecord::to(topic).key(key).payload(payload);
    producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("send");
}

/// Every line of every log file under `logs` as a `trades` record (key, payload), file by file in
/// line order, with the identity the ingestor would give it (generation 0).
fn records_of(logs: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(logs).expect("logs").map(|e| e.expect("entry").path()).collect();
    files.sort();
    for path in files {
        let name = LogFileName::parse(&path.file_name().expect("name").to_string_lossy()).expect("log name");
        let bytes = std::fs::read(&path).expect("read");
        let mut offset = 0u64;
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let text = &line[..line.len() - 1];
            let trade = tradeflow_core::log_format::parse_line(text).expect("parse");
            let id = TradeId { client: name.client.clone(), date: name.date, generation: 0, offset };
            out.push((name.client.to_string(), TradeRecord { id, trade }.to_json()));
            offset += line.len() as u64;
        }
    }
    out
}

/// A trade record of `client` that is in no log file (generation 7: its own dedupe mark).
fn injected(client: &str, offset: u64, symbol: &str, quantity: i64) -> Vec<u8> {
    injected_at(client, offset, symbol, rust_decimal::Decimal::ONE, quantity)
}

/// [`injected`] at `price`.
fn injected_at(client: &str, offset: u64, symbol: &str, price: rust_decimal::Decimal, quantity: i64) -> Vec<u8> {
    let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).and_then(|d| d.and_hms_opt(11, 0, 0)).expect("time");
    let trade = Trade::from_template(at, symbol, Side::Buy, price, quantity, "CQ09");
    let id = TradeId { client: ClientId::parse(client).expect("client"), date: at.date(), generation: 7, offset };
    TradeRecord { id, trade }.to_json()
}

/// What the aggregator must do with injected payloads, by the library's own rules: decoded and
/// applied to `expected`, or refused with a reason code.
fn expect_injected(expected: &mut Oracle, payloads: &[&[u8]]) -> Vec<&'static str> {
    payloads
        .iter()
        .map(|payload| {
            let Ok(record) = TradeRecord::from_json(payload) else { return refused::Reason::Undecodable.code() };
            let key = SummaryKey::of(&record.id.client, &record.trade);
            let applied = match expected.rows.get_mut(&key) {
                Some(position) => position.apply(&record.trade).is_ok(),
                None => Position::first(&record.trade).map(|p| expected.rows.insert(key, p)).is_ok(),
            };
            if applied { "" } else { refused::Reason::Unappliable.code() }
        })
        .collect()
}

/// Waits until the snapshot tables equal `expected`.
async fn rows_equal(p: &Pipeline, expected: &Oracle) {
    assert!(!expected.rows.is_empty());
    eventually("the snapshot tables to equal the oracle of what was accepted", LONG, || async {
        let stored = current_rows(&p.db.pool).await.ok()?;
        compare(&stored, expected).is_empty().then_some(())
    })
    .await;
}

/// The value of `name{label}` on the aggregator's `/metrics`.
async fn sample(port: u16, series: &str) -> Option<u64> {
    let body = get(port, "/metrics").await?;
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The refusals on `trades.refused` with `code`, once there are at least `n` of them.
async fn refusals(p: &Pipeline, code: &str, n: usize) -> Vec<Record> {
    let mut reader = TopicReader::new(&p.topics.kafka, &p.topics.topics.trades_refused);
    reader
        .read_until(&format!("{n} `{code}` refusals"), LONG, |records| {
            records.iter().filter(|r| r.headers.get(refused::REASON_CODE).map(String::as_str) == Some(code)).count()
                >= n
        })
        .await;
    reader
        .records
        .into_iter()
        .filter(|r| r.headers.get(refused::REASON_CODE).map(String::as_str) == Some(code))
        .collect()
}

/// Case 10 and the decoder: a trade that would overflow its row and a record that is no trade
/// record sit among two clients' trades on one partition. Both are set aside with their identity
/// and reason, counted, and every other trade on the partition is persisted.
#[tokio::test]
async fn refused_records_are_set_aside_and_the_partition_keeps_flowing() {
    let p = Pipeline::new().await;
    let (a, b, partition) = clients_sharing_a_partition();
    p.produce(&["--clients", &format!("{a},{b}"), "--count", "200", "--seed", "23", "--start", "2026-11-20T10:00:00"]);
    let records = records_of(&p.logs);
    let max_buy_1 = injected(&a, 0, "ZZZ", i64::MAX);
    let max_buy_2 = injected(&a, 100, "ZZZ", i64::MAX);
    let garbage = b"{\"not\":\"a trade record\"}".to_vec();
    let bad: [&[u8]; 3] = [&max_buy_1, &max_buy_2, &garbage];
    let mut expected = Oracle::from_dir(&p.logs).expect("oracle");
    let codes = expect_injected(&mut expected, &bad);
    assert_eq!(codes[2], "undecodable");
    assert_ne!(codes[1], "", "two buys of i64::MAX cannot both count");
    let kafka = producer(&p);
    let half = records.len() / 2;
    for (key, payload) in &records[..half] {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    for payload in bad {
        send(&kafka, &p.topics.topics.trades, &a, payload).await;
    }
    for (key, payload) in &records[half..] {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    rows_equal(&p, &expected).await;
    // Both clients of the partition have rows (the refusals stalled nothing).
    let stored = current_rows(&p.db.pool).await.expect("rows");
    for client in [&a, &b] {
        assert!(stored.keys().any(|k| k.client_id.as_str() == client.as_str()), "client {client} has rows");
    }
    // Set aside with identity and reason, the raw payload as value; offsets half, half+1, half+2.
    let mut refused = refusals(&p, "unappliable", codes.iter().filter(|c| **c == "unappliable").count()).await;
    refused.extend(refusals(&p, "undecodable", codes.iter().filter(|c| **c == "undecodable").count()).await);
    for (i, (payload, code)) in bad.iter().zip(&codes).enumerate() {
        if code.is_empty() {
            continue;
        }
        let offset = (half + i).to_string();
        let r = refused
            .iter()
            .find(|r| r.headers.get(refused::OFFSET) == Some(&offset))
            .unwrap_or_else(|| panic!("a refusal of offset {offset}: {refused:?}"));
        assert_eq!(r.payload, *payload);
        assert_eq!(r.headers.get(refused::REASON_CODE).map(String::as_str), Some(*code));
        assert_eq!(r.headers.get(refused::PARTITION), Some(&partition.to_string()));
        assert_eq!(r.headers.get(refused::SOURCE_TOPIC), Some(&p.topics.topics.trades));
        assert!(!r.headers.get(refused::REASON).expect("a reason").is_empty());
        if *code == "unappliable" {
            assert_eq!(r.headers.get(refused::TRADE_ID), Some(&format!("{a}/2026-11-20/7/100")));
            assert_eq!(r.headers.get(refused::ROW_KEY), Some(&format!("2026-11-20|{a}|CQ09|ZZZ")));
        }
    }
    for code in ["unappliable", "undecodable"] {
        let want = codes.iter().filter(|c| **c == code).count() as u64;
        let got = sample(port, &format!("tradeflow_aggregator_refused_total{{reason=\"{code}\"}}")).await;
        assert_eq!(got, Some(want), "{code}");
    }
    p.cleanup();
}

/// Case 1: a row Postgres refuses (here a CHECK constraint the test adds, SQLSTATE 23514, and a
/// NUL byte in a symbol unless the decoder refuses it first) is found among the snapshot's rows,
/// set aside with its key, image and error, and the rest is committed: the partition's other
/// client is persisted, snapshots succeed again, `/readyz` stays green.
#[tokio::test]
async fn a_row_postgres_refuses_is_quarantined_and_the_rest_committed() {
    let p = Pipeline::new().await;
    let (a, b, partition) = clients_sharing_a_partition();
    p.produce(&["--clients", &format!("{a},{b}"), "--count", "200", "--seed", "24", "--start", "2026-11-20T10:00:00"]);
    let records = records_of(&p.logs);
    // The tables exist once a store has migrated them; then the constraint goes on.
    tradeflow_aggregator::store::Store::connect(&p.db.url, &p.topics.topics.trades).await.expect("migrate");
    sqlx::query("ALTER TABLE summary_current ADD CONSTRAINT test_refuse CHECK (symbol <> 'REFUSEME')")
        .execute(&p.db.pool)
        .await
        .expect("constraint");
    let refuse_me = injected(&a, 0, "REFUSEME", 5);
    let nul = injected(&b, 0, "AA\0PL", 1);
    let nul_decodes = TradeRecord::from_json(&nul).is_ok();
    let kafka = producer(&p);
    let half = records.len() / 2;
    for (key, payload) in &records[..half] {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    send(&kafka, &p.topics.topics.trades, &a, &refuse_me).await;
    send(&kafka, &p.topics.topics.trades, &b, &nul).await;
    for (key, payload) in &records[half..] {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    let expected = Oracle::from_dir(&p.logs).expect("oracle");
    rows_equal(&p, &expected).await;
    let quarantined = refusals(&p, "postgres_refused", if nul_decodes { 2 } else { 1 }).await;
    let row_key = format!("2026-11-20|{a}|CQ09|REFUSEME");
    let r = quarantined.iter().find(|r| r.headers.get(refused::ROW_KEY) == Some(&row_key)).expect("REFUSEME set aside");
    assert_eq!(r.headers.get(refused::SQLSTATE).map(String::as_str), Some("23514"));
    assert_eq!(r.headers.get(refused::PARTITION), Some(&partition.to_string()));
    assert!(r.headers.get(refused::REASON).is_some_and(|why| why.contains("test_refuse")), "{:?}", r.headers);
    let image = tradeflow_aggregator::changelog::SummaryChange::from_json(&r.payload).expect("a row image");
    assert_eq!((image.row.symbol.as_str(), image.row.buy_qty), ("REFUSEME", 5));
    if nul_decodes {
        assert!(quarantined.iter().any(|r| r.headers.get(refused::SQLSTATE).map(String::as_str) == Some("22021")));
    } else {
        refusals(&p, "undecodable", 1).await;
    }
    let quarantined_n = sample(port, "tradeflow_aggregator_refused_total{reason=\"postgres_refused\"}").await;
    assert!(quarantined_n >= Some(1), "{quarantined_n:?}");
    // The partition's later snapshots commit: failures reset, ready.
    eventually("snapshots succeeding again", LONG, || async {
        (sample(port, "tradeflow_aggregator_snapshot_failures_consecutive").await? == 0).then_some(())
    })
    .await;
    let (status, body) = request(port, "/readyz", &[]).await.expect("readyz");
    assert_eq!(status, 200, "{body}");
    // More trades on the partition after the quarantine are persisted too.
    p.produce(&["--clients", &b, "--count", "50", "--seed", "25", "--start", "2026-11-22T10:00:00"]);
    let all = records_of(&p.logs);
    for (key, payload) in all.iter().filter(|(_, payload)| !records.iter().any(|(_, r)| r == payload)) {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    rows_equal(&p, &Oracle::from_dir(&p.logs).expect("oracle")).await;
    p.cleanup();
}

/// Snapshots that keep failing turn `/readyz` red with the reason and raise the failure metrics;
/// once they commit again it is green.
#[tokio::test]
async fn failing_snapshots_turn_readyz_red_until_they_commit() {
    let p = Pipeline::new().await;
    p.produce(&["--clients", "3", "--count", "100", "--seed", "26", "--start", "2026-11-20T10:00:00"]);
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    eventually("every partition loaded", LONG, || async {
        (sample(port, "tradeflow_aggregator_partitions_owned").await? == 12).then_some(())
    })
    .await;
    // Not a data error: every snapshot fails as a whole (a table it writes is gone).
    sqlx::query("ALTER TABLE file_progress RENAME TO file_progress_gone").execute(&p.db.pool).await.expect("rename");
    let kafka = producer(&p);
    for (key, payload) in records_of(&p.logs) {
        send(&kafka, &p.topics.topics.trades, &key, &payload).await;
    }
    let body = eventually("/readyz red", LONG, || async {
        request(port, "/readyz", &[]).await.filter(|(status, _)| *status == 503).map(|(_, body)| body)
    })
    .await;
    assert!(body.contains("snapshots failing") && body.contains("file_progress"), "{body}");
    let consecutive = sample(port, "tradeflow_aggregator_snapshot_failures_consecutive").await.unwrap_or(0);
    assert!(consecutive >= tradeflow_aggregator::metrics::SNAPSHOT_FAILURES_RED, "{consecutive}");
    sqlx::query("ALTER TABLE file_progress_gone RENAME TO file_progress").execute(&p.db.pool).await.expect("rename");
    eventually("/readyz green", LONG, || async {
        request(port, "/readyz", &[]).await.filter(|(status, _)| *status == 200).map(|_| ())
    })
    .await;
    assert!(sample(port, "tradeflow_aggregator_snapshot_failures_total").await >= Some(consecutive));
    rows_equal(&p, &Oracle::from_dir(&p.logs).expect("oracle")).await;
    p.cleanup();
}

/// Case 5: one tick dated 2030 among live ticks is refused and counted; later live ticks keep
/// moving the mark (it is what the snapshot rows carry). Ticks priced `-1.00` and `"1e3"` (the
/// newest, so it would be the mark if taken for 1000) are refused by the log line's Price rule.
#[tokio::test]
async fn a_price_tick_from_the_future_is_refused_and_live_ticks_keep_moving_the_mark() {
    let p = Pipeline::new().await;
    p.produce(&["--clients", "5", "--count", "300", "--seed", "27", "--start", "2026-11-20T10:00:00"]);
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    let kafka = producer(&p);
    let tick = |price: &str, at: chrono::DateTime<chrono::Utc>| {
        PriceTick { symbol: "AAPL".into(), price: price.parse().expect("price"), at }.to_json()
    };
    let now = chrono::Utc::now();
    send(&kafka, &p.topics.topics.prices, "AAPL", &tick("100.00", now)).await;
    send(&kafka, &p.topics.topics.prices, "AAPL", &tick("999.99", "2030-01-01T00:00:00Z".parse().expect("at"))).await;
    send(&kafka, &p.topics.topics.prices, "AAPL", &tick("-1.00", now)).await;
    send(&kafka, &p.topics.topics.prices, "AAPL", &tick("101.25", chrono::Utc::now())).await;
    let exponent = format!(r#"{{"symbol":"AAPL","price":"1e3","at":"{}"}}"#, chrono::Utc::now().to_rfc3339());
    send(&kafka, &p.topics.topics.prices, "AAPL", exponent.as_bytes()).await;
    eventually("the live ticks applied and the odd ones refused", LONG, || async {
        let applied = sample(port, "tradeflow_aggregator_price_ticks_total").await?;
        let future = sample(port, "tradeflow_aggregator_price_ticks_refused_total{reason=\"future\"}").await?;
        let bad_price = sample(port, "tradeflow_aggregator_price_ticks_refused_total{reason=\"bad_price\"}").await?;
        (applied == 2 && future == 1 && bad_price == 2).then_some(())
    })
    .await;
    // Trades now: every AAPL row is snapshotted with the latest live mark.
    let kafka_records = records_of(&p.logs);
    for (key, payload) in &kafka_records {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    let expected = Oracle::from_dir(&p.logs).expect("oracle");
    assert!(expected.rows.keys().any(|k| k.symbol == "AAPL"), "the feed traded AAPL");
    rows_equal(&p, &expected).await;
    let marks: Vec<Option<rust_decimal::Decimal>> =
        sqlx::query_scalar("SELECT mark_price FROM summary_current WHERE symbol = 'AAPL'")
            .fetch_all(&p.db.pool)
            .await
            .expect("marks");
    assert!(!marks.is_empty());
    assert!(marks.iter().all(|m| *m == Some("101.25".parse().expect("mark"))), "{marks:?}");
    p.cleanup();
}

/// Case 6: `trades` deleted and created again while Postgres keeps its offsets. The aggregator
/// does not consume the partition whose stored offset lies beyond the new log's end — error,
/// metric, `/readyz` red, the whole new log as lag — until `tradeflow rebase-offsets`; then it
/// consumes the new records and the rows equal the oracle of both logs.
#[tokio::test]
async fn a_recreated_trades_topic_is_refused_loudly_until_rebased() {
    let p = Pipeline::new().await;
    let (a, _, partition) = clients_sharing_a_partition();
    p.produce(&["--clients", &a, "--count", "120", "--seed", "28", "--start", "2026-11-20T10:00:00"]);
    let first = records_of(&p.logs);
    let kafka = producer(&p);
    for (key, payload) in &first {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    let port = harness::broker::free_port();
    let mut aggregator = p.start("aggregator", port);
    rows_equal(&p, &Oracle::from_dir(&p.logs).expect("oracle")).await;
    assert!(aggregator.terminate(Duration::from_secs(60)), "the aggregator stops on SIGTERM");
    // Delete and create `trades` again (the broker deletes asynchronously: retry the create).
    let admin: AdminClient<DefaultClientContext> = p.topics.kafka.client_config().create().expect("admin");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    admin.delete_topics(&[&p.topics.topics.trades], &options).await.expect("delete");
    let specs: Vec<_> =
        p.topics.partitions.specs(&p.topics.topics).into_iter().filter(|s| s.name == p.topics.topics.trades).collect();
    eventually("trades created again", LONG, || async {
        let created = tradeflow_core::kafka::create_topics(&p.topics.kafka, &specs).await.ok()?;
        created.contains(&p.topics.topics.trades).then_some(())
    })
    .await;
    // The next day's trades of the client, on the new topic: fewer records than the stored offset.
    p.produce(&["--clients", &a, "--count", "40", "--seed", "29", "--start", "2026-11-21T10:00:00"]);
    let second: Vec<_> = records_of(&p.logs).into_iter().filter(|r| !first.contains(r)).collect();
    assert_eq!(second.len(), 40);
    for (key, payload) in &second {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    let aggregator = p.start("aggregator", port);
    let body = eventually("/readyz red for the partition", LONG, || async {
        request(port, "/readyz", &[]).await.filter(|(status, _)| *status == 503).map(|(_, body)| body)
    })
    .await;
    assert!(
        body.contains(&format!("partition {partition} not consumed")) && body.contains("beyond the log's end"),
        "{body}"
    );
    assert_eq!(
        sample(port, &format!("tradeflow_aggregator_offsets_mismatch{{partition=\"{partition}\"}}")).await,
        Some(1)
    );
    let lag = eventually("the lag of the refused partition", LONG, || async {
        let body = get(port, "/metrics").await?;
        let series = format!("tradeflow_aggregator_consumer_lag{{partition=\"{partition}\"}} ");
        body.lines().find_map(|l| l.strip_prefix(&series)?.parse::<i64>().ok())
    })
    .await;
    assert_eq!(lag, 40, "the new log, not applied, is lag");
    let lags = labelled(port, "tradeflow_aggregator_consumer_lag").await.expect("lags");
    assert!(lags.iter().sum::<i64>() >= 40);
    // Nothing of the new day was counted (nor dropped as already applied).
    let stored = current_rows(&p.db.pool).await.expect("rows");
    assert!(stored.keys().all(|k| k.trade_date.to_string() == "2026-11-20"), "{:?}", stored.keys().collect::<Vec<_>>());
    // The operator's way out.
    let out = std::process::Command::new(harness::tradeflow_bin())
        .arg("rebase-offsets")
        .envs(p.env())
        .output()
        .expect("rebase-offsets");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("partition={partition}\tfrom=")) && stdout.contains("to=0"), "{stdout}");
    rows_equal(&p, &Oracle::from_dir(&p.logs).expect("oracle")).await;
    eventually("/readyz green", LONG, || async {
        request(port, "/readyz", &[]).await.filter(|(status, _)| *status == 200).map(|_| ())
    })
    .await;
    assert_eq!(
        sample(port, &format!("tradeflow_aggregator_offsets_mismatch{{partition=\"{partition}\"}}")).await,
        None
    );
    drop(aggregator);
    p.cleanup();
}

/// Case 5 on the page: the dashboard applies the same tick rule. A tick dated 2030 is refused and
/// counted; the live tick after it sets the mark.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_refuses_a_tick_from_the_future_and_follows_live_ticks() {
    let d = crate::dashboard::Dash::start(&[]).await;
    d.change("7", "ACC1", "AAPL", 1, 0).await;
    d.tick("AAPL", "100.00").await;
    d.tick_at("AAPL", "999.99", "2030-01-01T00:00:00Z".parse().expect("at")).await;
    d.tick("AAPL", "101.25").await;
    eventually("the live mark on the page", LONG, || async {
        let body = d.rest("7").await;
        let rows = body["rows"].as_array()?.clone();
        rows.iter().any(|r| r["symbol"] == "AAPL" && r["mark_price"] == "101.25").then_some(())
    })
    .await;
    let refused = crate::harness::http::metric(d.port, "tradeflow_dashboard_price_ticks_refused_total").await;
    assert_eq!(refused, Some(1));
}

/// `tradeflow backfill` meets a record that is not a trade record: it counts it, names it
/// (`PARTITION:OFFSET`) in its summary, and sets it aside on `trades.refused` as the live
/// aggregator would — once: a second backfill finds it below the stored offset (refused already)
/// and sets nothing aside again.
#[tokio::test]
async fn a_backfill_counts_names_and_sets_aside_an_undecodable_record_once() {
    let p = Pipeline::new().await;
    let (a, _, partition) = clients_sharing_a_partition();
    p.produce(&["--clients", &a, "--count", "60", "--seed", "29", "--start", "2026-11-20T10:00:00"]);
    let records = records_of(&p.logs);
    let kafka = producer(&p);
    let half = records.len() / 2;
    for (key, payload) in &records[..half] {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    let garbage = b"{\"not\":\"a trade record\"}";
    send(&kafka, &p.topics.topics.trades, &a, garbage).await;
    for (key, payload) in &records[half..] {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    let backfill = || backfill_whole_topic(&p);
    let first = backfill();
    let at = format!("{partition}:{half}");
    assert!(first.contains(&format!("applied: {}  duplicates dropped: 0  undecodable: 1", records.len())), "{first}");
    assert!(first.contains(&at) && first.contains("1 set aside on"), "{first}");
    rows_equal(&p, &Oracle::from_dir(&p.logs).expect("oracle")).await;
    let refused = refusals(&p, "undecodable", 1).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].headers.get(refused::OFFSET), Some(&half.to_string()));
    assert_eq!(refused[0].payload, garbage);
    // Again: the record lies below the offset the first backfill stored — refused before.
    let second = backfill();
    assert!(second.contains("undecodable: 1") && second.contains(&at), "{second}");
    assert!(second.contains("0 set aside on"), "{second}");
    assert_eq!(refusals(&p, "undecodable", 1).await.len(), 1, "set aside once");
    p.cleanup();
}

/// A trade at the edge contract's limits (price 9,999,999,999.99999999, quantity 10^9) on row
/// ZZZ of `client`: ~80 of them overflow the row's exact notional sum.
fn at_the_limits(client: &str, offset: u64) -> Vec<u8> {
    let price = rust_decimal::Decimal::new(999_999_999_999_999_999, 8);
    injected_at(client, offset, "ZZZ", price, tradeflow_core::edge::MAX_QUANTITY)
}

/// The backfill refuses what the live aggregator refuses: trades that would overflow their row
/// are counted, named and set aside (`unappliable`, with identity and row key) once — not on a
/// second backfill, whose stored offset is past them — and the rows equal the oracle of the
/// trades that were accepted.
#[tokio::test]
async fn a_backfill_sets_aside_a_trade_that_would_overflow_its_row_once() {
    let p = Pipeline::new().await;
    let (a, _, partition) = clients_sharing_a_partition();
    p.produce(&["--clients", &a, "--count", "40", "--seed", "31", "--start", "2026-11-20T10:00:00"]);
    let records = records_of(&p.logs);
    let limits: Vec<Vec<u8>> = (0..100).map(|i| at_the_limits(&a, i)).collect();
    let mut expected = Oracle::from_dir(&p.logs).expect("oracle");
    let codes = expect_injected(&mut expected, &limits.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let refused_n = codes.iter().filter(|c| **c == "unappliable").count();
    assert!(refused_n > 0 && codes.iter().all(|c| c.is_empty() || *c == "unappliable"), "{codes:?}");
    let kafka = producer(&p);
    for (key, payload) in &records {
        send(&kafka, &p.topics.topics.trades, key, payload).await;
    }
    for payload in &limits {
        send(&kafka, &p.topics.topics.trades, &a, payload).await;
    }
    let first_refused = records.len() + codes.iter().position(|c| !c.is_empty()).expect("a refusal");
    let backfill = || backfill_whole_topic(&p);
    let first = backfill();
    assert!(first.contains(&format!("undecodable: 0  unappliable: {refused_n}")), "{first}");
    assert!(first.contains(&format!("{partition}:{first_refused}")), "{first}");
    assert!(first.contains(&format!("{refused_n} set aside on")), "{first}");
    rows_equal(&p, &expected).await;
    let refused = refusals(&p, "unappliable", refused_n).await;
    assert_eq!(refused.len(), refused_n, "{refused:?}");
    let r = refused.iter().find(|r| r.headers.get(refused::OFFSET) == Some(&first_refused.to_string())).expect("first");
    let i = first_refused - records.len();
    assert_eq!(r.payload, limits[i]);
    assert_eq!(r.headers.get(refused::TRADE_ID), Some(&format!("{a}/2026-11-20/7/{i}")));
    assert_eq!(r.headers.get(refused::ROW_KEY), Some(&format!("2026-11-20|{a}|CQ09|ZZZ")));
    let second = backfill();
    assert!(second.contains(&format!("unappliable: {refused_n}")) && second.contains("0 set aside on"), "{second}");
    assert_eq!(refusals(&p, "unappliable", refused_n).await.len(), refused_n, "set aside once");
    p.cleanup();
}

/// `tradeflow backfill --from earliest` on `p` (3-s leases), which must succeed: its stdout.
fn backfill_whole_topic(p: &Pipeline) -> String {
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["backfill", "--from", "earliest"])
        .envs(p.env())
        .env("TRADEFLOW_BACKFILL_LEASE_SECS", "3")
        .output()
        .expect("backfill");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}
