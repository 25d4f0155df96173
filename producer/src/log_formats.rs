//! The log formats the producer writes: SPEC §1's (`seed`, the default) and one per example
//! mapping (examples/mappings/: `csv`, `jsonl`), so benchmarks, golden runs and the chaos run can
//! feed the pipeline any of them. Each format's file names and lines are the ones its mapping
//! reads (tests/integration/mapping.rs runs each through the pipeline to its oracle).

use std::io::Write as _;

use chrono::{NaiveDate, NaiveDateTime, TimeZone as _};
use chrono_tz::Tz;
use tradeflow_core::log_format::{LogFileName, render_line_into};
use tradeflow_core::{ClientId, Side, Trade};

/// `tradeflow producer --format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// SPEC §1: `tradeLog_client<ID>.<YYYY.MM.DD>.log`, `Key:Value|…` lines (seed.toml).
    #[default]
    Seed,
    /// A CSV export: `trades_<ID>_<YYYYMMDD>.csv`, a header line (csv.toml).
    Csv,
    /// A JSON-lines feed: `fills-<ID>-<YYYY-MM-DD>.jsonl`, instants in UTC (jsonl.toml).
    Jsonl,
}

/// The CSV export's header (csv.toml's `columns`).
pub const CSV_HEADER: &str = "time,account,symbol,side,qty,price,order_no\n";

impl LogFormat {
    /// The file of `client`'s lines of `date`.
    pub fn file_name(self, client: &ClientId, date: NaiveDate) -> String {
        match self {
            LogFormat::Seed => LogFileName::new(client.clone(), date).to_string(),
            LogFormat::Csv => format!("trades_{client}_{}.csv", date.format("%Y%m%d")),
            LogFormat::Jsonl => format!("fills-{client}-{}.jsonl", date.format("%Y-%m-%d")),
        }
    }

    /// What a new (empty) file starts with.
    pub fn header(self) -> &'static [u8] {
        match self {
            LogFormat::Csv => CSV_HEADER.as_bytes(),
            LogFormat::Seed | LogFormat::Jsonl => b"",
        }
    }

    /// Appends `trade`'s line (with its `\n`). `tz` is the zone of the activity time (the
    /// producer's `--tz`): the JSON-lines feed writes the instant, in UTC.
    pub fn render_into(self, trade: &Trade, tz: Tz, out: &mut Vec<u8>) {
        match self {
            LogFormat::Seed => render_line_into(trade, out),
            LogFormat::Csv => csv_line(trade, out),
            LogFormat::Jsonl => jsonl_line(trade, tz, out),
        }
    }
}

fn side(trade: &Trade) -> &'static str {
    match trade.side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// A CSV cell: quoted (`"` doubled) when it holds the delimiter, a quote or a line break.
fn cell(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn csv_line(t: &Trade, out: &mut Vec<u8>) {
    let _ = write!(out, "{},", t.activity_time.format("%Y-%m-%dT%H:%M:%S%.9f"));
    cell(out, &t.account_id);
    out.push(b',');
    cell(out, &t.symbol);
    let _ = write!(out, ",{},{},{},", side(t), t.quantity, t.price);
    if let Some(n) = t.order_no {
        let _ = write!(out, "{n}");
    }
    out.push(b'\n');
}

/// The instant of a wall-clock time of `tz` (the earlier one in a repeated hour; a time in a
/// skipped hour is read as UTC — the generator writes none in UTC, the default zone).
fn instant(t: NaiveDateTime, tz: Tz) -> NaiveDateTime {
    tz.from_local_datetime(&t).earliest().map_or(t, |i| i.naive_utc())
}

fn jsonl_line(t: &Trade, tz: Tz, out: &mut Vec<u8>) {
    let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let _ = writeln!(
        out,
        "{{\"ts\":\"{}+00:00\",\"acct\":{},\"sym\":{},\"side\":{},\"qty\":{},\"px\":\"{}\"}}",
        instant(t.activity_time, tz).format("%Y-%m-%dT%H:%M:%S%.9f"),
        json(&t.account_id),
        json(&t.symbol),
        if t.side == Side::Buy { 1 } else { 2 },
        t.quantity,
        t.price
    );
}

#[cfg(test)]
mod tests {
    use tradeflow_core::mapping::Mapping;

    use super::*;

    fn trade(account: &str) -> Trade {
        let line = format!(
            "OrderNo:16000000000001|Activity Time:2026.11.22 09:30:00.123456789|Symbol:AAPL|Side:S|Price:101.25|Quantity:42|AccountID:{account}"
        );
        tradeflow_core::log_format::parse_line(line.as_bytes()).unwrap()
    }

    /// Each format's line, read by its example mapping, is the trade (the JSON feed's time as New
    /// York wall clock, its mapping's zone).
    #[test]
    fn each_format_reads_back_with_its_mapping() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mappings");
        let client = ClientId::parse("7").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        for (format, file) in
            [(LogFormat::Seed, "seed.toml"), (LogFormat::Csv, "csv.toml"), (LogFormat::Jsonl, "jsonl.toml")]
        {
            let mapping = Mapping::load(&root.join(file)).unwrap();
            let name = format.file_name(&client, date);
            let (source, id) = mapping.identify(&name).unwrap_or_else(|| panic!("{name} not owned by {file}"));
            assert_eq!((id.client.as_str(), id.date), ("7", date));
            for account in ["CQ01", "A,\"B\""] {
                let t = trade(account);
                let mut line = Vec::new();
                format.render_into(&t, Tz::UTC, &mut line);
                let parsed = mapping.sources[source].parse_line(&line[..line.len() - 1], false).unwrap();
                let got = parsed.trade().unwrap().to_trade();
                assert_eq!((got.side, got.price, got.quantity), (t.side, t.price, t.quantity), "{file}");
                assert_eq!(got.account_id, t.account_id, "{file}");
                let expected = if format == LogFormat::Jsonl {
                    Tz::America__New_York.from_utc_datetime(&t.activity_time).naive_local()
                } else {
                    t.activity_time
                };
                assert_eq!(got.activity_time, expected, "{file}");
            }
        }
    }
}
