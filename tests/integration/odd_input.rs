//! Odd input on the real broker (issue 23, the ingestor's side; the rules are docs/edge.md): odd
//! files are one file's problem, odd bytes are framed or refused by the edge contract, and every
//! refused line is dead-lettered whole with its identity while the lines after it flow.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::time::Duration;

use tradeflow_core::ClientId;
use tradeflow_core::record::{self, TradeRecord};
use tradeflow_core::summary::{Position, SummaryKey};

use crate::harness::{Record, eventually};
use crate::ingestor::Setup;

const LONG: Duration = Duration::from_secs(120);

fn trade(r: &Record) -> TradeRecord {
    TradeRecord::from_json(&r.payload).expect("a trade record")
}

/// A line of the mock feed's shape.
fn line(order: u64, time: &str, side: &str, price: &str, qty: u64, extra: &str) -> String {
    format!(
        "OrderNo:{order}|Activity Time:2026.11.22 {time}|Symbol:AAPL|Side:{side}|Price:{price}|Quantity:{qty}|AccountID:CQ01{extra}"
    )
}

/// Cases 1, 2, 7 and 9 of issue 23, and shutdown with a FIFO in the directory.
#[tokio::test]
async fn odd_files_stop_only_themselves_and_odd_lines_are_framed_or_dead_lettered() {
    let s = Setup::new().await;
    std::fs::create_dir_all(&s.logs).expect("logs");
    // Case 2: a directory and a FIFO named like log files (they stopped every client before).
    let dir_named_like_a_log = s.file("73", "2026.11.22");
    std::fs::create_dir(&dir_named_like_a_log).expect("mkdir");
    let fifo = s.file("74", "2026.11.22");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // Case 7: a BOM; case 1: a NUL inside Symbol; case 9: a valid 70 KB line; a CRLF line; case 8's
    // price (28 places) refused at the edge; then more lines.
    let lines = [
        format!("\u{feff}{}", line(1, "10:00:01.0", "B", "1.00", 1, "")),
        line(2, "10:00:02.0", "B", "1.00", 2, "").replace("Symbol:AAPL", "Symbol:AA\0PL"),
        line(3, "10:00:03.0", "B", "1.00", 3, &format!("|Note:{}", "n".repeat(70_000))),
        format!("{}\r", line(4, "10:00:04.0", "B", "1.00", 4, "")),
        line(5, "10:00:05.0", "B", "0.1234567890123456789012345678", 5, ""),
        line(6, "10:00:06.0", "S", "1.00", 6, ""),
    ];
    let content = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(s.file("75", "2026.11.22"), &content).expect("write");
    let mut ingestor = s.ingestor();

    let mut trades = s.trades();
    trades.read_n(4, LONG).await;
    let got: Vec<_> = trades.records.iter().map(trade).collect();
    assert_eq!(got.iter().map(|r| r.trade.quantity).collect::<Vec<_>>(), [1, 3, 4, 6], "every good line, in order");
    assert_eq!((got[0].id.offset, got[0].trade.order_no), (3, Some(1)), "the BOM is skipped, not read into the key");
    let mut dlq = s.dlq();
    dlq.read_n(2, LONG).await;
    for (record, (index, code)) in dlq.records.iter().zip([(1, "control_character"), (4, "price_too_precise")]) {
        assert_eq!(record.headers[record::DLQ_REASON_CODE], code, "{:?}", record.headers);
        let offset: usize = record.headers[record::DLQ_OFFSET].parse().expect("offset");
        assert_eq!(record.payload, lines[index].as_bytes(), "the whole line, lossless");
        assert_eq!(&content.as_bytes()[offset..offset + record.payload.len()], record.payload.as_slice());
        assert_eq!(record.headers[record::DLQ_TRUNCATED], "false");
    }
    let unreadable = eventually("two unreadable files reported", LONG, || async {
        s.metric("tradeflow_ingestor_unreadable_files").await.filter(|&n| n == 2)
    })
    .await;
    assert_eq!(unreadable, 2);
    assert!(ingestor.running(), "the ingestor goes on");

    // The directory goes away and a real file takes its name: it is read on a retry.
    std::fs::remove_dir(&dir_named_like_a_log).expect("rmdir");
    std::fs::write(&dir_named_like_a_log, format!("{}\n", line(7, "10:00:07.0", "B", "2.00", 7, ""))).expect("write");
    trades
        .read_until("client 73's line after the retry", LONG, |r| {
            r.iter().any(|r| trade(r).id.client == ClientId::parse("73").expect("client"))
        })
        .await;
    let left = eventually("one unreadable file left", LONG, || async {
        s.metric("tradeflow_ingestor_unreadable_files").await.filter(|&n| n == 1)
    })
    .await;
    assert_eq!(left, 1);
    // Shutdown finishes within its drain timeout with a FIFO still in the directory.
    assert!(ingestor.terminate(Duration::from_secs(30)), "clean exit within the drain timeout");
    s.cleanup();
}

/// Case 3 of issue 23: a file rewritten in place while the ingestor is stopped, keeping its first
/// line, is a new generation read from 0 (it resumed at the old offset and lost two trades).
#[tokio::test]
async fn a_rewrite_that_keeps_the_head_while_stopped_is_a_new_generation() {
    let s = Setup::new().await;
    std::fs::create_dir_all(&s.logs).expect("logs");
    let template = |order: u64, time: &str, side: &str, price: &str, qty: u64| {
        let t = tradeflow_core::log_format::parse_activity_time(&format!("2026.11.22 {time}")).expect("time");
        let side = if side == "B" { tradeflow_core::Side::Buy } else { tradeflow_core::Side::Sell };
        let mut trade =
            tradeflow_core::Trade::from_template(t, "AAPL", side, price.parse().expect("price"), qty as i64, "CQ01");
        trade.order_no = Some(16000000000000 + order as i64);
        String::from_utf8(tradeflow_core::log_format::render_line(&trade)).expect("utf-8")
    };
    let a1 = template(1, "10:00:01.000000000", "B", "100.00", 10);
    let a2 = template(2, "10:00:02.000000000", "S", "101.00", 20);
    let a3 = template(3, "10:00:03.000000000", "B", "102.00", 30);
    let path = s.file("91", "2026.11.22");
    std::fs::write(&path, format!("{a1}{a2}{a3}")).expect("write");
    let mut ingestor = s.ingestor();
    let mut trades = s.trades();
    trades.read_n(3, LONG).await;
    assert!(ingestor.terminate(Duration::from_secs(30)), "clean stop");
    let b2 = template(2, "10:00:02.000000000", "S", "101.00", 2000);
    let b3 = template(3, "10:00:03.000000000", "S", "102.00", 30);
    let b4 = template(4, "10:00:04.000000000", "B", "104.00", 40);
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("meta"));
    std::fs::write(&path, format!("{a1}{b2}{b3}{b4}")).expect("rewrite in place");
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("meta")), inode);
    let _restarted = s.ingestor();
    trades.read_n(7, LONG).await;
    // The row as the aggregator keeps it: each identity once, in any order.
    let mut ids = std::collections::BTreeMap::new();
    for r in &trades.records {
        let r = trade(r);
        ids.insert(r.id.clone(), r.trade);
    }
    assert_eq!(ids.len(), 7, "3 lines of generation 0 and 4 of generation 1: {:?}", ids.keys().collect::<Vec<_>>());
    assert_eq!(ids.keys().filter(|id| id.generation == 1).count(), 4);
    let mut row: Option<Position> = None;
    for t in ids.values() {
        match &mut row {
            Some(p) => p.apply(t).expect("apply"),
            None => row = Some(Position::first(t).expect("first")),
        }
    }
    let row = row.expect("a row");
    let key = SummaryKey::of(&ClientId::parse("91").expect("client"), ids.values().next().expect("a trade"));
    assert_eq!(key.kafka_key(), "2026-11-22|91|CQ01|AAPL");
    assert_eq!((row.trade_count, row.buy_qty, row.sell_qty), (7, 90, 2050));
    assert_eq!(
        (row.buy_notional.to_string(), row.sell_notional.to_string(), row.last_price.to_string()),
        ("9220.00".into(), "207080.00".into(), "104.00".into())
    );
    // The restarted ingestor read the 4 lines of the new generation and dead-lettered no scrap.
    let read = eventually("the new generation's lines read", LONG, || async {
        s.metric("tradeflow_ingestor_lines_read_total").await.filter(|&n| n >= 4)
    })
    .await;
    assert_eq!(read, 4);
    let dead: i64 = crate::harness::http::labelled(s.metrics_port, "tradeflow_ingestor_lines_dead_lettered_total")
        .await
        .expect("metrics")
        .iter()
        .sum();
    assert_eq!(dead, 0, "no scrap dead-lettered");
    s.cleanup();
}

/// Case 4 of issue 23: copytruncate with a writer that does not append leaves a run of NULs
/// before the writer's next line. The run is skipped and reported; the line counts once, with its
/// order number (it was lost inside a 64 KiB `line_too_long` dead letter).
#[tokio::test]
async fn a_nul_run_after_copytruncate_is_skipped_and_the_next_line_counts_once() {
    let s = Setup::new().await;
    std::fs::create_dir_all(&s.logs).expect("logs");
    let path = s.file("16", "2026.11.22");
    let mut writer = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&path).expect("open");
    for i in 0..300u64 {
        writeln!(writer, "{}", line(16000000000000 + i, "11:00:00.0", "B", "7.00", 1, "|Pad:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")).expect("write");
    }
    writer.flush().expect("flush");
    let mut ingestor = s.ingestor();
    let mut trades = s.trades();
    trades.read_n(300, LONG).await;
    // copytruncate: the copy is someone else's; the file is cut to 0 and the writer, which did
    // not open it with O_APPEND, writes at its old position: a hole of NULs, then the line.
    let old_len = writer.stream_position().expect("position");
    std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
    writer.seek(SeekFrom::Start(old_len)).expect("seek");
    let amzn = "OrderNo:16000000000301|Activity Time:2026.11.22 12:00:00.000000000|Symbol:AMZN|Side:B|Price:7.00|Quantity:3|AccountID:CQ02";
    writeln!(writer, "{amzn}").expect("write");
    writer.flush().expect("flush");
    trades.read_until("the AMZN line", LONG, |r| r.iter().any(|r| trade(r).trade.symbol == "AMZN")).await;
    let mut dlq = s.dlq();
    dlq.read_until("the NUL run's dead letter", LONG, |r| {
        r.iter().any(|r| r.headers.get(record::DLQ_REASON_CODE).is_some_and(|c| c == "nul_run"))
    })
    .await;
    let run = dlq.records.iter().find(|r| r.headers[record::DLQ_REASON_CODE] == "nul_run").expect("the run");
    assert_eq!(run.headers[record::DLQ_OFFSET], "0");
    assert_eq!(run.headers[record::DLQ_LINE_LEN], old_len.to_string());
    assert!(run.payload.is_empty());
    let nul_bytes = eventually("the NUL run counted", LONG, || async {
        s.metric("tradeflow_ingestor_nul_bytes_total").await.filter(|&n| n == old_len)
    })
    .await;
    assert_eq!(nul_bytes, old_len);
    assert!(ingestor.terminate(Duration::from_secs(30)), "clean stop");
    let amzn: Vec<_> = trades.records.iter().map(trade).filter(|r| r.trade.symbol == "AMZN").collect();
    assert_eq!(amzn.len(), 1, "counted once");
    assert_eq!((amzn[0].id.offset, amzn[0].trade.order_no), (old_len, Some(16000000000301)));
    assert_eq!(
        dlq.records.len(),
        1,
        "nothing else dead-lettered: {:?}",
        dlq.records.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    s.cleanup();
}

/// `ingestor --backfill` with a FIFO and a directory named like log files of the day: every other
/// file is published whole, then the command fails naming the two it could not read (it refused
/// the whole day before).
#[tokio::test]
async fn a_backfill_publishes_every_regular_file_and_names_the_ones_it_could_not_read() {
    let s = Setup::new().await;
    std::fs::create_dir_all(&s.logs).expect("logs");
    std::fs::create_dir(s.file("81", "2026.11.22")).expect("mkdir");
    let made = std::process::Command::new("mkfifo").arg(s.file("82", "2026.11.22")).status().expect("mkfifo");
    assert!(made.success());
    let content: String =
        (1..=3).map(|i| format!("{}\n", line(i, &format!("10:00:0{i}.0"), "B", "1.00", i, ""))).collect();
    std::fs::write(s.file("83", "2026.11.22"), &content).expect("write");
    let out = std::process::Command::new(crate::harness::tradeflow_bin())
        .args(["ingestor", "--backfill", "--from", "2026-11-22"])
        .envs(s.env())
        .output()
        .expect("backfill");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a backfill that skipped files must not say success: {stderr}");
    assert!(
        stderr.contains("tradeLog_client81.2026.11.22.log") && stderr.contains("tradeLog_client82.2026.11.22.log"),
        "{stderr}"
    );
    let mut trades = s.trades();
    trades.read_n(3, LONG).await;
    let got: Vec<u64> = trades.records.iter().map(|r| trade(r).id.offset).collect();
    assert_eq!(got.len(), 3, "client 83's three lines, published whole");
    s.cleanup();
}
