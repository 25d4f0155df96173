use chrono::{DateTime, NaiveDate};
use tradeflow_core::mapping::Mapping;
use tradeflow_core::record::TradeRecord;

use super::redrive::{self, Options, Outcome};
use super::*;

const CSV: &str = include_str!("../../../examples/mappings/csv.toml");

fn letter(offset: u64, dlq_offset: i64, state: State, code: &str, value: &str) -> DeadLetter {
    DeadLetter {
        partition: 0,
        dlq_offset,
        at: DateTime::from_timestamp_millis(1_795_000_000_000 + dlq_offset),
        line: LineKey { client: "7".into(), file: "trades_7_20261122.csv".into(), generation: 0, offset },
        date: NaiveDate::from_ymd_opt(2026, 11, 22),
        state,
        reason_code: code.into(),
        reason: format!("reason {code}"),
        line_len: value.len() as u64,
        truncated: false,
        redrive_of: None,
        first_line: false,
        value: value.as_bytes().to_vec(),
    }
}

const HOLD: &str = "2026-11-22T09:30:00.000000001,CQ01,AAPL,HOLD,5,101.25,";

#[test]
fn the_latest_state_per_line_and_the_filters() {
    let lines = Lines::fold([
        Ok(letter(100, 0, State::Dead, "bad_value", HOLD)),
        Ok(letter(200, 1, State::Dead, "column_count", "a,b")),
        Err(Unreadable { partition: 0, dlq_offset: 2, why: "no header tradeflow.file".into() }),
        Ok(letter(100, 3, State::Redriven, "bad_value", "")),
    ]);
    assert_eq!((lines.lines.len(), lines.unreadable.len()), (2, 1));
    let first = lines.lines.values().next().unwrap();
    assert_eq!((first.latest().state, first.latest_line().dlq_offset), (State::Redriven, 0));
    let by_reason = Filter { reason: Some("bad_value".into()), ..Filter::default() };
    assert_eq!(lines.select(&by_reason).count(), 1, "a re-driven line keeps its last failure's reason");
    let by_file = Filter { file: Some("trades_8_20261122.csv".into()), ..Filter::default() };
    assert_eq!(lines.select(&by_file).count(), 0);
    let later = Filter { from: DateTime::from_timestamp_millis(1_795_000_000_001), ..Filter::default() };
    assert_eq!(lines.select(&later).map(|h| h.first().line.offset).collect::<Vec<_>>(), vec![200]);
}

#[test]
fn a_fixed_mapping_publishes_under_the_original_identity() {
    let fixed = Mapping::parse(&CSV.replace("SELL = \"S\" }", "SELL = \"S\", HOLD = \"B\" }"), "fixed.toml").unwrap();
    let lines = Lines::fold([
        Ok(letter(100, 0, State::Dead, "bad_value", HOLD)),
        Ok(letter(200, 1, State::Dead, "bad_value", "not,a,row")),
        Ok(letter(300, 2, State::Dead, "nul_run", "")),
    ]);
    let planned = redrive::plan(&lines, &Filter::default(), &fixed, Options::default());
    let Outcome::Publish { client, record } = &planned[0].outcome else { panic!("{:?}", planned[0].outcome) };
    let record = TradeRecord::from_json(record).unwrap();
    assert_eq!((client.as_str(), record.id.to_string().as_str()), ("7", "7/2026-11-22/0/100"));
    assert_eq!(record.trade.quantity, 5);
    assert!(matches!(&planned[1].outcome, Outcome::StillFails { code, changed: true, .. } if code == "column_count"));
    assert!(matches!(planned[2].outcome, Outcome::NotALine(_)));
    let report = redrive::count(&planned);
    assert_eq!((report.redriven, report.still_failing, report.new_reasons, report.not_lines), (1, 1, 1, 1));
    // The wrong mapping still fails the same way: nothing new to say.
    let wrong = Mapping::parse(CSV, "csv.toml").unwrap();
    let mut same = letter(100, 0, State::Dead, "bad_value", HOLD);
    same.reason = "field side has bad value \"HOLD\": expected one of \"BUY\", \"SELL\"".into();
    let lines = Lines::fold([Ok(same)]);
    let planned = redrive::plan(&lines, &Filter::default(), &wrong, Options::default());
    assert!(matches!(&planned[0].outcome, Outcome::StillFails { changed: false, .. }), "{:?}", planned[0].outcome);
}

#[test]
fn a_re_driven_line_is_left_alone_unless_asked() {
    let fixed = Mapping::parse(&CSV.replace("SELL = \"S\" }", "SELL = \"S\", HOLD = \"B\" }"), "fixed.toml").unwrap();
    let lines = Lines::fold([
        Ok(letter(100, 0, State::Dead, "bad_value", HOLD)),
        Ok(letter(100, 1, State::Redriven, "bad_value", "")),
    ]);
    let planned = redrive::plan(&lines, &Filter::default(), &fixed, Options::default());
    assert_eq!(planned[0].outcome, Outcome::AlreadyRedriven);
    let again = Options { include_redriven: true, ..Options::default() };
    let planned = redrive::plan(&lines, &Filter::default(), &fixed, again);
    assert!(matches!(planned[0].outcome, Outcome::Publish { .. }), "the line's bytes are the dead letter's");
}

#[test]
fn a_read_keeps_the_bytes_of_the_newest_dead_letter_of_the_lines_asked_for_only() {
    let mut lines = Lines::default();
    let keep_100 = |k: &LineKey| k.offset == 100;
    for r in [
        letter(100, 0, State::Dead, "bad_value", HOLD),
        letter(200, 1, State::Dead, "column_count", "a,b"),
        letter(100, 2, State::Dead, "bad_value", "newer bytes"),
        letter(100, 3, State::Redriven, "bad_value", ""),
    ] {
        lines.add(Ok(r), &keep_100);
    }
    lines.finish();
    let bytes = |offset: u64| -> Vec<(i64, Vec<u8>)> {
        let h = lines.lines.values().find(|h| h.first().line.offset == offset).unwrap();
        h.records.iter().map(|r| (r.dlq_offset, r.value.clone())).collect()
    };
    assert_eq!(
        bytes(100),
        vec![(0, vec![]), (2, b"newer bytes".to_vec()), (3, vec![])],
        "only the newest dead letter's"
    );
    assert_eq!(bytes(200), vec![(1, vec![])], "a line not asked for keeps its headers, no bytes");
    let h = lines.lines.values().next().unwrap();
    assert_eq!((h.records.len(), h.latest_line().value.as_slice()), (3, b"newer bytes".as_slice()));
    // Out of order (never within one partition): the older record's bytes are the ones dropped.
    let mut lines = Lines::default();
    lines.add(Ok(letter(100, 5, State::Dead, "bad_value", "newest")), &|_| true);
    lines.add(Ok(letter(100, 4, State::Dead, "bad_value", "older")), &|_| true);
    lines.finish();
    assert_eq!(lines.lines.values().next().unwrap().latest_line().value, b"newest".to_vec());
}

const HEADER: &str = "time,account,symbol,side,qty,price,order_no";

/// A BOM file's header sits at offset 3: marked as the first line (or, dead-lettered before the
/// mark existed, reading as the header there), a re-drive takes it as the header; a line at 3
/// that is not marked and is not the header is an ordinary line (the second of a file whose
/// first line was 2 bytes).
#[test]
fn a_header_after_a_bom_is_a_header_on_redrive() {
    let csv = Mapping::parse(CSV, "csv.toml").unwrap();
    let legacy = letter(3, 0, State::Dead, "bad_value", HEADER);
    let mut marked_bad = letter(3, 1, State::Dead, "bad_header", "time,acct,symbol,side,qty,price,order_no");
    marked_bad.line.file = "trades_8_20261122.csv".into();
    marked_bad.first_line = true;
    let mut unmarked_row = letter(3, 2, State::Dead, "bad_value", HOLD);
    unmarked_row.line.file = "trades_9_20261122.csv".into();
    let lines = Lines::fold([Ok(legacy), Ok(marked_bad), Ok(unmarked_row)]);
    let planned = redrive::plan(&lines, &Filter::default(), &csv, Options::default());
    assert_eq!(planned[0].outcome, Outcome::Header);
    assert!(
        matches!(&planned[1].outcome, Outcome::StillFails { code, .. } if code == "bad_header"),
        "{:?}",
        planned[1].outcome
    );
    assert!(
        matches!(&planned[2].outcome, Outcome::StillFails { code, .. } if code == "bad_value"),
        "{:?}",
        planned[2].outcome
    );
}
