//! Mappings end to end: logs in the example formats (a CSV export, a JSON-lines feed) run through
//! the real ingestor, broker, aggregator and Postgres with `--mapping`, and end equal to the
//! oracle of the same mapping; a wrong mapping is refused at start naming its line; `mapping
//! check` reports bad lines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tradeflow_aggregator::verify::{compare, current_rows};
use tradeflow_core::mapping::Mapping;
use tradeflow_core::oracle::Oracle;

use crate::aggregator::Pipeline;
use crate::harness::{self, TopicReader, eventually};

const LONG: Duration = Duration::from_secs(120);
const ACCOUNTS: [&str; 3] = ["CQ01", "CQ02", "CQ03"];
const SYMBOLS: [&str; 5] = ["BANKNIFTY", "AAPL", "AMZN", "FB", "GOOG"];

pub(crate) fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mappings").join(name)
}

/// One fill, as the generators below write it.
struct Fill {
    second: u32,
    nanos: u32,
    account: &'static str,
    symbol: &'static str,
    buy: bool,
    qty: u32,
    price: String,
}

fn fills(seed: u64, n: usize) -> Vec<Fill> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| Fill {
            second: i as u32,
            nanos: rng.random_range(0..1_000_000_000),
            account: ACCOUNTS[rng.random_range(0..3)],
            symbol: SYMBOLS[rng.random_range(0..5)],
            buy: rng.random_bool(0.5),
            qty: rng.random_range(0..100),
            price: format!("{}.{:02}", rng.random_range(1..1000), rng.random_range(0..100)),
        })
        .collect()
}

/// A CSV export (examples/mappings/csv.toml) for `client` on 2026-11-22: header, rows, and every
/// 40th row bad (side `HOLD`). Client 2's file starts with a UTF-8 BOM, as Excel writes it (its
/// header is then at byte 3). Returns the number of bad rows.
pub(crate) fn write_csv(dir: &Path, client: u32, n: usize) -> usize {
    let bom = if client == 2 { "\u{FEFF}" } else { "" };
    let mut text = format!("{bom}time,account,symbol,side,qty,price,order_no\n");
    let mut bad = 0;
    for (i, f) in fills(client as u64, n).iter().enumerate() {
        let side = if i % 40 == 39 {
            bad += 1;
            "HOLD"
        } else if f.buy {
            "BUY"
        } else {
            "SELL"
        };
        let order = if i % 3 == 0 { String::new() } else { (16000000000000u64 + i as u64).to_string() };
        let (h, m, s) = (9 + f.second / 3600, f.second / 60 % 60, f.second % 60);
        text.push_str(&format!(
            "2026-11-22T{h:02}:{m:02}:{s:02}.{:09},{},{},{side},{},{},{order}\n",
            f.nanos, f.account, f.symbol, f.qty, f.price
        ));
    }
    std::fs::write(dir.join(format!("trades_{client}_20261122.csv")), text).expect("write csv");
    bad
}

/// A JSON-lines feed (examples/mappings/jsonl.toml) for `client` on 2026-11-22, every 40th line
/// bad (a negative price). Returns the number of bad lines.
fn write_jsonl(dir: &Path, client: u32, n: usize) -> usize {
    let mut text = String::new();
    let mut bad = 0;
    for (i, f) in fills(100 + client as u64, n).iter().enumerate() {
        let price = if i % 40 == 39 {
            bad += 1;
            format!("\"-{}\"", f.price)
        } else if i % 2 == 0 {
            f.price.clone() // a JSON number: its digits are kept exactly
        } else {
            format!("\"{}\"", f.price)
        };
        let (h, m, s) = (14 + f.second / 3600, f.second / 60 % 60, f.second % 60);
        text.push_str(&format!(
            "{{\"ts\":\"2026-11-22T{h:02}:{m:02}:{s:02}.{:09}+00:00\",\"acct\":\"{}\",\"sym\":\"{}\",\"side\":{},\"qty\":{},\"px\":{price}}}\n",
            f.nanos,
            f.account,
            f.symbol,
            if f.buy { 1 } else { 2 },
            f.qty
        ));
    }
    std::fs::write(dir.join(format!("fills-c{client}-2026-11-22.jsonl")), text).expect("write jsonl");
    bad
}

/// Runs the ingestor and aggregator with `mapping` over the logs `write` makes; the snapshot
/// tables must end equal to the oracle of that mapping, every bad line dead-lettered once, and
/// `tradeflow verify --mapping` must agree.
async fn runs_to_its_oracle(mapping_file: &Path, write: fn(&Path, u32, usize) -> usize) {
    let p = Pipeline::new().await;
    std::fs::create_dir_all(&p.logs).expect("logs");
    let bad: usize = [1, 2, 3].iter().map(|&c| write(&p.logs, c, 400)).sum();
    let mapping = Mapping::load(mapping_file).expect("example mapping");
    let oracle = Oracle::from_dir_mapped(&p.logs, &mapping).expect("oracle");
    assert_eq!((oracle.lines, oracle.bad_lines), (1200, bad as u64), "every line counted, headers not");
    assert!(oracle.rows.len() > 10);
    let file = mapping_file.display().to_string();
    let env = [("TRADEFLOW_MAPPING", file.as_str())];
    let _ingestor = p.start_with("ingestor", 0, &env);
    let _aggregator = p.start("aggregator", 0);
    let diffs = eventually("the snapshot tables to equal the mapping's oracle", LONG, || async {
        let stored = current_rows(&p.db.pool).await.ok()?;
        let diffs = compare(&stored, &oracle);
        diffs.is_empty().then_some(diffs)
    })
    .await;
    assert!(diffs.is_empty());
    let mut dlq = TopicReader::new(&p.topics.kafka, &p.topics.topics.trades_dlq);
    dlq.read_until("every bad line dead-lettered", LONG, |r| r.len() >= bad).await;
    assert_eq!(dlq.records.len(), bad, "each bad line once");
    assert!(
        dlq.records
            .iter()
            .all(|r| r.headers.get(tradeflow_core::record::DLQ_REASON_CODE).is_some_and(|c| c == "bad_value"))
    );
    let verify = |mapping: Option<&str>| {
        let mut cmd = std::process::Command::new(harness::tradeflow_bin());
        cmd.args(["verify", "--logs"]).arg(&p.logs).env("DATABASE_URL", &p.db.url).env_remove("TRADEFLOW_MAPPING");
        if let Some(m) = mapping {
            cmd.args(["--mapping", m]);
        }
        cmd.output().expect("verify")
    };
    let out = verify(Some(&file));
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Without the mapping the oracle sees no trade log at all: verify must say the rows differ.
    assert!(!verify(None).status.success(), "verify without --mapping reads none of these files");
    p.cleanup();
}

#[tokio::test]
async fn a_csv_export_runs_to_its_oracle() {
    runs_to_its_oracle(&example("csv.toml"), write_csv).await;
}

#[tokio::test]
async fn a_json_lines_feed_runs_to_its_oracle() {
    runs_to_its_oracle(&example("jsonl.toml"), write_jsonl).await;
}

#[test]
fn a_wrong_mapping_stops_the_ingestor_at_start_naming_the_line() {
    let dir = harness::temp_dir();
    let text = std::fs::read_to_string(example("csv.toml"))
        .expect("example")
        .replace("type = \"decimal\"", "type = \"money\"");
    let line = text[..text.find("\"money\"").expect("edited")].matches('\n').count() + 1;
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, &text).expect("write");
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["ingestor", "--mapping"])
        .arg(&bad)
        .env("TRADE_LOG_DIR", dir.join("logs"))
        .env("TRADEFLOW_INGESTOR_STATE", dir.join("state"))
        .env("KAFKA_BROKERS", "127.0.0.1:9") // never reached: the mapping is checked first
        .output()
        .expect("ingestor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("bad.toml:{line}: unknown variant `money`")), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mapping_check_prints_records_and_each_bad_line() {
    let dir = harness::temp_dir();
    let bad = write_csv(&dir, 5, 80);
    let sample = dir.join("trades_5_20261122.csv");
    let check = || {
        std::process::Command::new(harness::tradeflow_bin())
            .args(["mapping", "check", "--mapping"])
            .arg(example("csv.toml"))
            .arg(&sample)
            .output()
            .expect("mapping check")
    };
    let out = check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bad lines: exit 1");
    assert_eq!(stdout.lines().count(), 80 - bad, "one record per good row");
    for line in stdout.lines() {
        let record = tradeflow_core::record::TradeRecord::from_json(line.as_bytes()).expect("a trade record");
        assert_eq!(record.id.client.as_str(), "5");
    }
    assert_eq!(stderr.matches("field side has bad value \"HOLD\"").count(), bad, "{stderr}");
    assert!(stderr.contains("trades_5_20261122.csv:41: offset "), "bad lines named by line number: {stderr}");
    // The good rows alone pass.
    let good: String = std::fs::read_to_string(&sample)
        .expect("read")
        .lines()
        .filter(|l| !l.contains("HOLD"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&sample, &good).expect("write");
    let out = check();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Saved by Excel (a BOM first): the header at byte 3 is the header, as the ingestor reads it.
    std::fs::write(&sample, format!("\u{FEFF}{good}")).expect("write");
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("trades_5_20261122.csv:1: header"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `mapping check` frames a sample as the ingestor and the oracle do (one rule, one reason): a
/// line over the 1 MiB cap is `line_too_long` (not `field_too_long`, as when the check cut lines
/// itself), a NUL run is `nul_run`, and the line after either is read on its own.
#[test]
fn mapping_check_frames_as_the_ingestor_and_names_the_same_reasons() {
    use tradeflow_core::edge::MAX_LINE_BYTES;
    let dir = harness::temp_dir();
    let sample = dir.join("trades_6_20261122.csv");
    let row = "2026-11-22T09:30:00.000000001,CQ01,AAPL,BUY,5,101.25,";
    let long = format!("2026-11-22T09:30:00.000000002,{},AAPL,BUY,5,101.25,", "A".repeat(MAX_LINE_BYTES));
    let header = "time,account,symbol,side,qty,price,order_no";
    let mut bytes = format!("{header}\n{row}\n{long}\n{row}\n").into_bytes();
    bytes.extend_from_slice(&[0; 16]);
    bytes.extend_from_slice(format!("{row}\n").as_bytes());
    std::fs::write(&sample, &bytes).expect("write");
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["mapping", "check", "--mapping"])
        .arg(example("csv.toml"))
        .arg(&sample)
        .output()
        .expect("mapping check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3, "the rows around the long line: {stderr}");
    let too_long = tradeflow_core::log_format::ParseError::LineTooLong { len: long.len() as u64, max: MAX_LINE_BYTES };
    assert!(
        stderr.contains(&format!("offset {}: {too_long} [line_too_long]", header.len() + row.len() + 2)),
        "{stderr}"
    );
    assert!(!stderr.contains("field_too_long"), "{stderr}");
    assert!(stderr.contains("[nul_run]"), "{stderr}");
    assert!(stderr.contains("records: 3; bad lines: 1; NUL runs: 1"), "{stderr}");
    // The oracle counts the same: three trades, one bad line.
    let mapping = Mapping::load(&example("csv.toml")).expect("mapping");
    let oracle = Oracle::from_dir_mapped(&dir, &mapping).expect("oracle");
    assert_eq!((oracle.lines, oracle.bad_lines, oracle.nul_runs), (4, 1, 1));
    let _ = std::fs::remove_dir_all(dir);
}

/// The golden run of one format: `tradeflow producer --format FORMAT` writes three clients' logs,
/// the ingestor reads them with that format's example mapping, and the snapshot tables end equal
/// to the oracle of the same mapping (no line bad, none lost), `tradeflow verify --mapping` agreeing.
async fn the_producer_s_format_runs_to_its_oracle(format: &str, mapping_file: &str) {
    let p = Pipeline::new().await;
    p.produce(&[
        "--format",
        format,
        "--clients",
        "1,2,3",
        "--count",
        "700",
        "--rate",
        "5",
        "--seed",
        "26",
        "--start",
        "2026-11-22T09:30:00",
    ]);
    let file = example(mapping_file);
    let mapping = Mapping::load(&file).expect("example mapping");
    let found = mapping.log_files(&p.logs, |_| true).expect("log files");
    assert_eq!(found.len(), 3, "one file per client, named as {mapping_file} reads them");
    let oracle = Oracle::from_dir_mapped(&p.logs, &mapping).expect("oracle");
    assert_eq!((oracle.lines, oracle.bad_lines), (2100, 0), "every line the producer wrote reads");
    let path = file.display().to_string();
    let _ingestor = p.start_with("ingestor", 0, &[("TRADEFLOW_MAPPING", path.as_str())]);
    let _aggregator = p.start("aggregator", 0);
    let diffs = eventually("the snapshot tables to equal the mapping's oracle", LONG, || async {
        let stored = current_rows(&p.db.pool).await.ok()?;
        let diffs = compare(&stored, &oracle);
        diffs.is_empty().then_some(diffs)
    })
    .await;
    assert!(diffs.is_empty());
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["verify", "--logs"])
        .arg(&p.logs)
        .args(["--mapping", &path])
        .env("DATABASE_URL", &p.db.url)
        .output()
        .expect("verify");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    p.cleanup();
}

#[tokio::test]
async fn golden_run_seed_format() {
    the_producer_s_format_runs_to_its_oracle("seed", "seed.toml").await;
}

#[tokio::test]
async fn golden_run_csv_format() {
    the_producer_s_format_runs_to_its_oracle("csv", "csv.toml").await;
}

#[tokio::test]
async fn golden_run_jsonl_format() {
    the_producer_s_format_runs_to_its_oracle("jsonl", "jsonl.toml").await;
}
