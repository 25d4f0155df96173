//! The edge contract (docs/edge.md), one table of odd values run through all three places that
//! apply it — the line parser (the ingestor), the oracle (`tradeflow verify`) and the record
//! decoder (the aggregator) — which must agree on each: accepted everywhere with the same value,
//! or refused everywhere for the same reason. Then proptest with adversarial generators holds
//! them to it on values nobody listed.

use chrono::NaiveDate;
use compact_str::CompactString;
use proptest::prelude::*;
use rust_decimal::Decimal;
use tradeflow_core::client::ClientId;
use tradeflow_core::edge::{MAX_KEY_BYTES, MAX_LINE_BYTES, MAX_QUANTITY, MAX_TEXT_BYTES, check_trade};
use tradeflow_core::log_format::framing::{Piece, frames};
use tradeflow_core::log_format::{parse_line, render_line};
use tradeflow_core::oracle::Oracle;
use tradeflow_core::record::{TradeId, TradeRecord};
use tradeflow_core::{Side, Trade};

const TEMPLATE: &str = "OrderNo:16000000000001|Activity Time:2026.11.22 09:30:00.123456789|FillNumber:600110663|ResponseType:TRADE_CONFIRM|OrderID:1|Symbol:AAPL|Side:B|Price:123.45|Quantity:42|AccountID:CQ01|ErrorCode:0|TimeStamp:1633924085|Exchange_Order_Id:483425880054544049 6|ChildResponseType:NULL_RESPONSE_MIDDLE|Duration:GTC|ExchTs:33959 25290703";

fn id() -> TradeId {
    TradeId {
        client: ClientId::parse("7").expect("client"),
        date: NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"),
        generation: 0,
        offset: 0,
    }
}

/// The template line with `key`'s value replaced.
fn line_with(key: &str, value: &str) -> String {
    TEMPLATE
        .split('|')
        .map(|f| if f.split(':').next() == Some(key) { format!("{key}:{value}") } else { f.to_owned() })
        .collect::<Vec<_>>()
        .join("|")
}

/// The template's record (as the writer writes it) with `field` set to `value` in JSON.
fn record_with(field: &str, value: serde_json::Value) -> Vec<u8> {
    let template = parse_line(TEMPLATE.as_bytes()).expect("template");
    let mut json: serde_json::Value =
        serde_json::from_slice(&TradeRecord { id: id(), trade: template }.to_json()).expect("json");
    json["trade"][field] = value;
    serde_json::to_vec(&json).expect("json")
}

/// What the parser, the oracle and the decoder say of one odd value: `Ok` or the error code.
fn verdicts(key: &str, field: &str, text: &str, json: serde_json::Value) -> [Result<(), String>; 3] {
    let line = line_with(key, text);
    let parser = parse_line(line.as_bytes()).map(|_| ()).map_err(|e| e.code().to_owned());
    let mut oracle = Oracle::new();
    let counted = oracle.apply_line(&ClientId::parse("7").expect("client"), line.as_bytes());
    let oracle = if counted { Ok(()) } else { Err(parser.clone().err().unwrap_or_else(|| "refused".into())) };
    let decoder = TradeRecord::decode(&record_with(field, json)).map(|_| ()).map_err(|e| e.code().to_owned());
    [parser, oracle, decoder]
}

/// (log key, record field, value in the line, value in the record, verdict: Ok or the reason code).
type Case = (&'static str, &'static str, String, serde_json::Value, Result<(), &'static str>);

#[test]
fn one_table_of_odd_values_three_places_one_verdict() {
    let s = |v: &str| serde_json::Value::String(v.to_owned());
    let n = |v: i64| serde_json::Value::from(v);
    let long_key = "S".repeat(MAX_KEY_BYTES);
    let longer_key = "S".repeat(MAX_KEY_BYTES + 1);
    let long_text = "t".repeat(MAX_TEXT_BYTES);
    let longer_text = "t".repeat(MAX_TEXT_BYTES + 1);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // The issue's case 1: a NUL inside Symbol (Postgres refuses 0x00 in text).
        ("Symbol", "symbol", "AA\0PL".into(), s("AA\0PL"), Err("control_character")),
        ("Symbol", "symbol", "AA\tPL".into(), s("AA\tPL"), Err("control_character")),
        ("Symbol", "symbol", "AA\x7fPL".into(), s("AA\x7fPL"), Err("control_character")),
        ("Symbol", "symbol", "AA\u{85}PL".into(), s("AA\u{85}PL"), Err("control_character")),
        ("Symbol", "symbol", "AA\u{1b}[31mPL".into(), s("AA\u{1b}[31mPL"), Err("control_character")),
        ("Symbol", "symbol", "ÄPFEL€".into(), s("ÄPFEL€"), Ok(())),
        ("Symbol", "symbol", "A\"B\\C".into(), s("A\"B\\C"), Ok(())),
        ("Symbol", "symbol", "".into(), s(""), Err("bad_value")),
        ("Symbol", "symbol", long_key.clone(), s(&long_key), Ok(())),
        ("Symbol", "symbol", longer_key.clone(), s(&longer_key), Err("field_too_long")),
        ("AccountID", "account_id", longer_key.clone(), s(&longer_key), Err("field_too_long")),
        ("AccountID", "account_id", "CQ\u{0}1".into(), s("CQ\u{0}1"), Err("control_character")),
        ("Duration", "duration", long_text.clone(), s(&long_text), Ok(())),
        ("Duration", "duration", longer_text.clone(), s(&longer_text), Err("field_too_long")),
        ("ExchTs", "exch_ts", "1\u{7}2".into(), s("1\u{7}2"), Err("control_character")),
        ("ResponseType", "response_type", "".into(), s(""), Ok(())),
        // The issue's case 8: 28 decimal places (rust_decimal rounded the row's sum).
        ("Price", "price", "0.1234567890123456789012345678".into(), s("0.1234567890123456789012345678"), Err("price_too_precise")),
        ("Price", "price", "1.000000000".into(), s("1.000000000"), Err("price_too_precise")),
        ("Price", "price", "9999999999.99999999".into(), s("9999999999.99999999"), Ok(())),
        ("Price", "price", "10000000000".into(), s("10000000000"), Err("price_too_large")),
        ("Price", "price", "0".into(), s("0"), Ok(())),
        ("Quantity", "quantity", MAX_QUANTITY.to_string(), n(MAX_QUANTITY), Ok(())),
        ("Quantity", "quantity", (MAX_QUANTITY + 1).to_string(), n(MAX_QUANTITY + 1), Err("quantity_too_large")),
        // The issue's case 10: a quantity that overflows a row's sum in two lines.
        ("Quantity", "quantity", i64::MAX.to_string(), n(i64::MAX), Err("quantity_too_large")),
        ("Quantity", "quantity", "0".into(), n(0), Ok(())),
    ];
    for (key, field, text, json, want) in cases {
        let got = verdicts(key, field, &text, json);
        let want = want.map_err(str::to_owned);
        assert_eq!(got, [want.clone(), want.clone(), want], "{key} = {text:?}");
    }
    // Values only a record can carry are refused by the decoder (a line cannot hold them).
    for (field, value, code) in
        [("symbol", s("A|B"), "bad_value"), ("price", s("-1.00"), "bad_value"), ("quantity", n(-1), "bad_value")]
    {
        let got = TradeRecord::decode(&record_with(field, value.clone())).map(|_| ()).map_err(|e| e.code());
        assert_eq!(got, Err(code), "{field} = {value}");
    }
    assert!(TradeRecord::decode(&record_with("activity_time", s("+10000-01-01T00:00:00"))).is_err());
    // A control character anywhere in a line (a key, an unknown field) refuses the line.
    for line in [format!("{TEMPLATE}|Venue\0:X"), format!("{TEMPLATE}|Venue:X\u{9b}")] {
        assert_eq!(parse_line(line.as_bytes()).map_err(|e| e.code()), Err("control_character"), "{line:?}");
    }
    // The CR before the LF is the line ending, not content.
    assert!(parse_line(format!("{TEMPLATE}\r").as_bytes()).is_ok());
}

#[test]
fn framing_cases_of_the_issue() {
    let line = TEMPLATE.as_bytes();
    // Case 7: a BOM; case 4: a NUL run before a line; case 9: a 70 KB line is a line.
    let mut file = b"\xEF\xBB\xBF".to_vec();
    file.extend_from_slice(line);
    file.push(b'\n');
    file.resize(file.len() + 98_000, 0);
    file.extend_from_slice(line);
    file.push(b'\n');
    let seventy = format!("{TEMPLATE}|Note:{}\n", "n".repeat(70_000));
    file.extend_from_slice(seventy.as_bytes());
    let pieces: Vec<_> = frames(&file, MAX_LINE_BYTES).collect();
    assert_eq!(pieces.len(), 4, "{:?}", pieces.iter().map(std::mem::discriminant).collect::<Vec<_>>());
    assert!(matches!(pieces[0], Piece::Line { offset: 3, .. }));
    assert!(matches!(pieces[1], Piece::NulRun { len: 98_000, .. }));
    for p in [&pieces[0], &pieces[2], &pieces[3]] {
        let Piece::Line { line, .. } = p else { panic!("{p:?}") };
        let trade = parse_line(line).expect("a line of the template");
        assert_eq!(trade.order_no, Some(16000000000001), "the BOM is not part of the first key");
    }
}

/// Strings a hostile writer might put in a field.
fn odd_text(min: usize) -> impl Strategy<Value = CompactString> {
    prop_oneof![
        proptest::string::string_regex(&format!("[A-Za-z0-9 ._-]{{{min},12}}")).expect("regex"),
        proptest::collection::vec(
            prop_oneof![
                Just('\0'),
                Just('\t'),
                Just('\u{7f}'),
                Just('\u{85}'),
                Just('\u{9f}'),
                Just('\u{a0}'),
                Just('é'),
                Just('€'),
                Just(':'),
                Just('"'),
                Just('\\'),
                Just('\u{feff}'),
                any::<char>(),
                Just('A'),
            ],
            min..40
        )
        .prop_map(|c| c.into_iter().collect::<String>()),
        (0usize..2, 250usize..270).prop_map(|(k, n)| if k == 0 { "k".repeat(n / 8) } else { "t".repeat(n) }),
    ]
    .prop_filter("no field separator or line end (they change the framing, not the value)", |s| {
        !s.contains(['|', '\n']) && !s.ends_with('\r')
    })
    .prop_map(CompactString::from)
}

fn odd_price() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (0i64..100_000_000, 0u32..=2).prop_map(|(m, s)| Decimal::new(m, s)),
        (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
        (0u32..=28).prop_map(|s| Decimal::from_i128_with_scale(99_999_999_999_999_999, s)),
    ]
}

fn odd_quantity() -> impl Strategy<Value = i64> {
    prop_oneof![0i64..100, Just(MAX_QUANTITY), Just(MAX_QUANTITY + 1), any::<i64>()]
}

prop_compose! {
    fn odd_trade()(
        symbol in odd_text(0), account_id in odd_text(0), duration in proptest::option::of(odd_text(0)),
        exch_ts in proptest::option::of(odd_text(0)), price in odd_price(), quantity in odd_quantity(),
        buy in any::<bool>(), secs in 0u32..86_400,
    ) -> Trade {
        let time = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date")
            .and_hms_opt(secs / 3600, secs / 60 % 60, secs % 60).expect("time");
        let mut t = Trade::from_template(time, symbol.as_str(), if buy { Side::Buy } else { Side::Sell }, price, quantity, account_id.as_str());
        (t.duration, t.exch_ts) = (duration, exch_ts);
        t
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A trade rendered as a line and written as a record: the parser, the decoder and the
    /// contract agree — accepted everywhere as the same trade, or refused everywhere.
    #[test]
    fn parser_decoder_and_contract_agree(t in odd_trade()) {
        let contract = check_trade(&t.borrowed()).map_err(|e| e.code());
        let line = render_line(&t);
        let parsed = parse_line(line.strip_suffix(b"\n").unwrap_or(&line));
        let decoded = TradeRecord::decode(&TradeRecord { id: id(), trade: t.clone() }.to_json());
        match contract {
            Ok(()) => {
                prop_assert_eq!(parsed.as_ref().ok(), Some(&t));
                prop_assert_eq!(decoded.ok().map(|r| r.trade), Some(t));
            }
            Err(code) => {
                prop_assert_eq!(parsed.map_err(|e| e.code()).err(), Some(code));
                prop_assert_eq!(decoded.map_err(|e| e.code()).err(), Some(code));
            }
        }
    }
}

// Default case count (256): these generate long byte vectors, slow in a debug build.
proptest! {

    /// Any bytes: parsing never panics, and a line the parser accepts is counted by the oracle
    /// and its record decodes to the same trade.
    #[test]
    fn any_line_parses_or_is_refused_and_the_oracle_agrees(
        bytes in proptest::collection::vec(prop_oneof![Just(b'|'), Just(b':'), Just(0u8), Just(b'\r'), Just(0xC2), any::<u8>()], 0..200),
        splice in any::<prop::sample::Index>(),
    ) {
        let mut line = TEMPLATE.as_bytes().to_vec();
        let at = splice.index(line.len());
        line.splice(at..at, bytes.iter().copied().filter(|&b| b != b'\n'));
        let parsed = parse_line(&line);
        let mut oracle = Oracle::new();
        prop_assert_eq!(oracle.apply_line(&ClientId::parse("7").expect("client"), &line), parsed.is_ok());
        if let Ok(t) = parsed {
            let record = TradeRecord { id: id(), trade: t };
            prop_assert_eq!(TradeRecord::decode(&record.to_json()).ok(), Some(record));
        }
    }

    /// Any bytes: the decoder never panics.
    #[test]
    fn the_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = TradeRecord::decode(&bytes);
    }

    /// Framing covers every byte exactly once, in order (a BOM at 0 aside), on any bytes.
    #[test]
    fn framing_covers_every_byte(
        bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'\n'), Just(0xEF), Just(0xBB), Just(0xBF), any::<u8>()], 0..300),
        cap in 1usize..40,
    ) {
        let mut at = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        for piece in frames(&bytes, cap) {
            let (offset, len) = match piece {
                Piece::Line { offset, line } => { prop_assert!(line.len() <= cap); (offset, line.len() as u64 + 1) }
                Piece::TooLong { offset, len } => { prop_assert!(len as usize > cap); (offset, len + 1) }
                Piece::NulRun { offset, len } => (offset, len),
                Piece::Partial { offset, len } => (offset, len),
            };
            prop_assert_eq!(offset, at as u64);
            at += len as usize;
        }
        prop_assert_eq!(at, bytes.len());
    }
}
