use super::*;
use crate::log_format::parse_line_ref;
use crate::trade::Side;

const TEMPLATE: &str = "OrderNo:16000000000001|Activity Time:2026.11.22 09:30:00.123456789|FillNumber:600110663|ResponseType:TRADE_CONFIRM|OrderID:1|Symbol:AAPL|Side:B|Price:123.45|Quantity:42|AccountID:CQ01|ErrorCode:0|TimeStamp:1633924085|Exchange_Order_Id:483425880054544049 6|ChildResponseType:NULL_RESPONSE_MIDDLE|Duration:GTC|ExchTs:33959 25290703";

fn example(name: &str) -> Mapping {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mappings").join(name);
    Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(text: &str) -> String {
    match Mapping::parse(text, "m.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn builtin_is_the_spec_parser_and_a_copy_of_it_is_too() {
    let builtin = Mapping::builtin();
    assert!(builtin.is_builtin());
    assert_eq!(builtin.sources.len(), 1);
    let copy = Mapping::parse(SEED_MAPPING, "copy.toml").unwrap();
    assert!(copy.is_builtin(), "a file equal to the built-in one takes the fast path");
    let (source, name) = builtin.identify("tradeLog_client7.2026.11.22.log").unwrap();
    assert_eq!((source, name.client.as_str(), name.date.to_string()), (0, "7", "2026-11-22".into()));
    assert!(builtin.identify("tradeLog_client7.2026.1.2.log").is_none());
}

/// The interpreter reading the seed mapping gives what the built-in parser gives: the same
/// trades, and for bad lines the same message and code.
#[test]
fn the_interpreter_on_the_seed_mapping_agrees_with_the_builtin_parser() {
    let interpreted = compile::compile(SEED_MAPPING, "seed", None).unwrap().remove(0);
    assert!(interpreted.has_interpreter());
    let mut lines: Vec<String> = vec![
        TEMPLATE.into(),
        "Activity Time:2026.11.22D09:30:00.1|Symbol:FB|Side:S|Price:0|Quantity:0|AccountID:CQ02|Venue:X\r".into(),
        String::new(),
        "Symbol:AAPL|Side:B".into(),
    ];
    for (from, to) in [
        ("Side:B", "Side:X"),
        ("Price:123.45", "Price:-1"),
        ("Price:123.45", "Price:1e3"),
        ("Price:123.45", "Price:0.1234567890123456789012345678901"),
        ("Quantity:42", "Quantity:4.5"),
        ("Quantity:42", "Quantity:99999999999999999999"),
        ("Symbol:AAPL", "Symbol:"),
        ("AccountID:CQ01", "AccountID:"),
        ("OrderID:1", "OrderID:x"),
        ("ErrorCode:0", "ErrorCode:99999999999"),
        ("09:30:00.123456789", "9:30"),
        ("|Side:B|", "|SideB|"),
        ("|Side:B|", "|Side:B|Side:S|"),
        ("|Duration:GTC|", "|Duration:|"),
        ("Price:123.45", "Price:1:2"),
    ] {
        lines.push(TEMPLATE.replace(from, to));
    }
    for key in ["Activity Time", "Symbol", "Side", "Price", "Quantity", "AccountID", "OrderNo"] {
        let kept: Vec<&str> = TEMPLATE.split('|').filter(|f| !f.starts_with(&format!("{key}:"))).collect();
        lines.push(kept.join("|"));
    }
    for line in &lines {
        let builtin = parse_line_ref(line.as_bytes()).map(|t| t.to_trade());
        let mapped = interpreted.parse_line(line.as_bytes(), false).map(|p| p.trade().map(|t| t.to_trade()));
        match (builtin, mapped) {
            (Ok(a), Ok(Some(b))) => assert_eq!(a, b, "{line}"),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{line}");
                assert_eq!(a.code(), b.code(), "{line}");
            }
            (a, b) => panic!("{line}: built-in {a:?}, interpreter {b:?}"),
        }
    }
}

#[test]
fn csv_example_reads_its_header_and_rows() {
    let m = example("csv.toml");
    assert!(!m.is_builtin());
    let (i, name) = m.identify("trades_42_20261122.csv").unwrap();
    assert_eq!((name.client.as_str(), name.date.to_string()), ("42", "2026-11-22".into()));
    let s = &m.sources[i];
    assert_eq!(s.parse_line(b"time,account,symbol,side,qty,price,order_no", true), Ok(Parsed::Header));
    let p = s.parse_line(b"2026-11-22T09:30:00.123456789,CQ01,AAPL,SELL,42,123.45,\r", false).unwrap();
    let t = p.trade().unwrap();
    assert_eq!((t.symbol, t.side, t.quantity, t.order_no), ("AAPL", Side::Sell, 42, None));
    assert_eq!(t.price.to_string(), "123.45");
    assert_eq!(t.activity_time.to_string(), "2026-11-22 09:30:00.123456789");
    let bad = |line: &str| s.parse_line(line.as_bytes(), false).unwrap_err();
    assert_eq!(
        bad("2026-11-22T09:30:00,CQ01,AAPL,BUY,42,1.5,x").to_string(),
        "field order_no has bad value \"x\": not an integer in range"
    );
    assert_eq!(bad("2026-11-22T09:30:00,CQ01,AAPL,buy,42,1.5,").code(), "bad_value");
    assert_eq!(bad("2026-11-22T09:30:00,,AAPL,BUY,42,1.5,").to_string(), "required field account is missing");
    assert_eq!(bad("2026-11-22T09:30:00,CQ01,AAPL,BUY,42").code(), "column_count");
    assert_eq!(bad("time,account,symbol,side,qty,price,order_no").code(), "bad_value");
    assert_eq!(s.parse_line(b"time,acct,symbol,side,qty,price,order_no", true).unwrap_err().code(), "bad_header");
}

#[test]
fn json_example_converts_instants_and_maps_sides() {
    let m = example("jsonl.toml");
    let (i, name) = m.identify("fills-c9-2026-11-22.jsonl").unwrap();
    assert_eq!(name.client.as_str(), "c9");
    let s = &m.sources[i];
    let line = br#"{"ts":"2026-11-22T14:30:00.5+00:00","acct":"CQ01","sym":"AAPL","side":2,"qty":7,"px":123.40}"#;
    let p = s.parse_line(line, true).unwrap();
    let t = p.trade().unwrap();
    assert_eq!(t.activity_time.to_string(), "2026-11-22 09:30:00.500");
    assert_eq!((t.side, t.quantity, t.exchange_order_id), (Side::Sell, 7, Some("NONE")));
    assert_eq!(t.price.to_string(), "123.40", "a JSON number keeps its digits");
    let bad = |l: &str| s.parse_line(l.as_bytes(), true).unwrap_err();
    assert_eq!(
        bad(r#"{"ts":"2026-11-22T14:30:00+00:00","acct":"CQ01","sym":"AAPL","side":3,"qty":7,"px":"1"}"#).code(),
        "bad_value"
    );
    assert_eq!(
        bad(r#"{"ts":"2026-11-22T14:30:00+00:00","acct":"CQ01","sym":"AAPL","side":1,"qty":7}"#).to_string(),
        "required field px is missing"
    );
    assert_eq!(
        bad(r#"{"ts":"2026-11-22T14:30:00+00:00","acct":"CQ01","sym":"AAPL","side":1,"qty":7,"px":1e3}"#).code(),
        "bad_value"
    );
    assert_eq!(bad("not json").code(), "bad_json");
}

fn seed_with(from: &str, to: &str) -> String {
    assert!(SEED_MAPPING.contains(from), "{from}");
    SEED_MAPPING.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn a_wrong_mapping_is_refused_naming_its_line() {
    let cases = [
        (seed_with("type = \"decimal\"", "type = \"money\""), "\"money\"", "unknown variant"),
        (
            seed_with("(?P<client>", "(?P<customer>"),
            "file_name = 'tradeLog_client(?P<customer>",
            "no named capture (?P<client>",
        ),
        (seed_with("(?P<date>\\d{4}", "(\\d{4}"), "file_name = ", "(?P<date>"),
        (seed_with("file_name = 'tradeLog", "file_name = '(tradeLog"), "file_name = ", "not a valid regex"),
        (seed_with("format = \"tradeflow\"", "format = \"%Y-%m-%d\""), "format = \"%Y-%m-%d\"", "full date and time"),
        (seed_with("format = \"tradeflow\"", "format = \"%Q %H\""), "format = \"%Q %H\"", "not a valid chrono format"),
        (seed_with("date_format = \"%Y.%m.%d\"", "date_format = \"%H\""), "date_format = \"%H\"", "does not read back"),
        (seed_with("time_zone = \"UTC\"", "time_zone = \"Mars/Olympus\""), "time_zone = \"Mars", "unknown time zone"),
        (seed_with("record = \"price\"", "record = \"px\""), "record = \"px\"", "unknown record field \"px\""),
        (
            seed_with("record = \"price\"\ntype = \"decimal\"", "record = \"price\"\ntype = \"string\""),
            "type = \"string\"\n\n[[source.field]]\nkey = \"Quantity\"",
            "takes type = \"decimal\"",
        ),
        (
            seed_with(
                "key = \"Price\"\nrecord = \"price\"\ntype = \"decimal\"",
                "key = \"Price\"\nrecord = \"order_no\"\ntype = \"integer\"",
            ),
            "record = \"order_no\"\ntype = \"integer\"\n\n[[source.field]]\nkey = \"Quantity\"",
            "mapped twice",
        ),
        (seed_with("format = \"key_value\"", "format = \"xml\""), "format = \"xml\"", "unknown variant"),
        (seed_with("key_separator = \":\"", "delimiter = \";\""), "[source.line]\nformat", "does not go with"),
    ];
    for (text, at, message) in cases {
        let e = refused(&text);
        let line = line_of(&text, at);
        assert!(e.starts_with(&format!("m.toml:{line}: ")), "expected line {line} for {message:?}: {e}");
        assert!(e.contains(message), "{e} should say {message:?}");
    }
    // A required record field with no source: named, at its [[source]].
    let without_price =
        SEED_MAPPING.replace("[[source.field]]\nkey = \"Price\"\nrecord = \"price\"\ntype = \"decimal\"\n\n", "");
    let e = refused(&without_price);
    assert!(e.contains("record field price is required (SPEC §1) but no [[source.field]] gives it"), "{e}");
    assert!(e.starts_with(&format!("m.toml:{}: ", line_of(&without_price, "[[source]]"))), "{e}");
    let optional_price =
        seed_with("record = \"price\"\ntype = \"decimal\"", "record = \"price\"\ntype = \"decimal\"\nrequired = false");
    assert!(refused(&optional_price).contains("required = false needs a default"));
    let bad_default = seed_with(
        "record = \"quantity\"\ntype = \"integer\"",
        "record = \"quantity\"\ntype = \"integer\"\ndefault = \"-1\"",
    );
    assert!(refused(&bad_default).contains("default \"-1\" is not a valid quantity"));
    let bad_side = seed_with("values = { B = \"B\", S = \"S\" }", "values = { B = \"BUY\", S = \"S\" }");
    assert!(refused(&bad_side).contains("expected \"B\" or \"S\""));
}

#[test]
fn a_changed_seed_is_interpreted_and_applies_its_change() {
    let renamed = seed_with("key = \"Symbol\"", "key = \"Ticker\"");
    let m = Mapping::parse(&renamed, "m.toml").unwrap();
    assert!(!m.is_builtin() && m.sources[0].has_spec_names());
    let line = TEMPLATE.replace("Symbol:", "Ticker:");
    let p = m.sources[0].parse_line(line.as_bytes(), true).unwrap();
    assert_eq!(p.trade().unwrap().symbol, "AAPL");
    assert_eq!(
        m.sources[0].parse_line(TEMPLATE.as_bytes(), true).unwrap_err().to_string(),
        "required field Ticker is missing"
    );
}

#[test]
fn files_are_found_per_source_and_same_identity_twice_is_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SEED_MAPPING}\n{}",
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mappings/csv.toml")).unwrap()
    );
    let m = Mapping::parse(&text, "two.toml").unwrap();
    for f in ["tradeLog_client1.2026.11.22.log", "trades_2_20261122.csv", "trades_1_20261122.csv", "notes.txt"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    let found = m.log_files(dir.path(), |_| true).unwrap();
    let names: Vec<_> = found.iter().map(|f| (f.path.file_name().unwrap().to_str().unwrap(), f.source)).collect();
    assert_eq!(names, vec![("tradeLog_client1.2026.11.22.log", 0), ("trades_2_20261122.csv", 1)]);
    let only_csv = m.log_files(dir.path(), |s| s.name == "csv-export").unwrap();
    assert_eq!(only_csv.len(), 2);
}
