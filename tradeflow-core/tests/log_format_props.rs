//! Property tests: render → parse is the identity for any valid trade; arbitrary bytes never panic.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use compact_str::CompactString;
use proptest::prelude::*;
use rust_decimal::Decimal;
use tradeflow_core::log_format::{parse_line, render_line};
use tradeflow_core::{Side, Trade};

/// Strings the edge contract allows (docs/edge.md): no `|`, no control character (C0, DEL, C1);
/// at most 24 characters (keys are cut to their 32-byte limit by `key`).
fn text(min: usize) -> impl Strategy<Value = CompactString> {
    proptest::string::string_regex(&format!("[^|\\x00-\\x1f\\x7f-\\x{{9f}}]{{{min},24}}"))
        .expect("valid regex")
        .prop_map(CompactString::from)
}

/// A `Symbol` or `AccountID`: `text`, cut to the contract's 32 bytes on a character boundary.
fn key() -> impl Strategy<Value = CompactString> {
    text(1).prop_map(|s| {
        let mut end = s.len().min(tradeflow_core::edge::MAX_KEY_BYTES);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        CompactString::from(&s[..end])
    })
}

fn activity_time() -> impl Strategy<Value = NaiveDateTime> {
    (1970i32..2100, 1u32..=12, 1u32..=28, 0u32..24, 0u32..60, 0u32..60, 0u32..1_000_000_000).prop_map(
        |(y, mo, d, h, mi, s, ns)| {
            NaiveDateTime::new(
                NaiveDate::from_ymd_opt(y, mo, d).expect("valid date"),
                NaiveTime::from_hms_nano_opt(h, mi, s, ns).expect("valid time"),
            )
        },
    )
}

/// Prices the contract allows: below 10^10, at most 8 places.
fn price() -> impl Strategy<Value = Decimal> {
    (0u32..=8)
        .prop_flat_map(|scale| (0i64..10_000_000_000 * 10i64.pow(scale)).prop_map(move |m| Decimal::new(m, scale)))
}

prop_compose! {
    fn trade()(
        order_no in proptest::option::of(any::<i64>()),
        activity_time in activity_time(),
        fill_number in proptest::option::of(any::<i64>()),
        response_type in proptest::option::of(text(0)),
        order_id in proptest::option::of(any::<i64>()),
        symbol in key(),
        side in prop_oneof![Just(Side::Buy), Just(Side::Sell)],
        price in price(),
        quantity in 0i64..=tradeflow_core::edge::MAX_QUANTITY,
        account_id in key(),
        error_code in proptest::option::of(any::<i32>()),
        timestamp in proptest::option::of(any::<i64>()),
        exchange_order_id in proptest::option::of(text(0)),
        child_response_type in proptest::option::of(text(0)),
        duration in proptest::option::of(text(0)),
        exch_ts in proptest::option::of(text(0)),
    ) -> Trade {
        Trade { order_no, activity_time, fill_number, response_type, order_id, symbol, side, price, quantity,
                account_id, error_code, timestamp, exchange_order_id, child_response_type, duration, exch_ts }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn render_then_parse_is_identity(t in trade()) {
        let line = render_line(&t);
        prop_assert_eq!(line.last(), Some(&b'\n'));
        let parsed = parse_line(&line[..line.len() - 1]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &t);
        // Same scale too, so the line renders back byte for byte.
        prop_assert_eq!(render_line(&parsed), line);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn mutated_lines_never_panic(t in trade(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut line = render_line(&t);
        let i = pos.index(line.len());
        line[i] = byte;
        let _ = parse_line(&line);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The ingestor's hand-written record JSON reads back to the same record.
    #[test]
    fn trade_record_json_round_trips(t in trade(), generation in any::<u32>(), offset in any::<u64>()) {
        let record = tradeflow_core::record::TradeRecord {
            id: tradeflow_core::record::TradeId {
                client: tradeflow_core::ClientId::parse("c-1").expect("client"),
                date: t.activity_time.date(),
                generation,
                offset,
            },
            trade: t,
        };
        let json = record.to_json();
        let back = tradeflow_core::record::TradeRecord::from_json(&json).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&json))))?;
        prop_assert_eq!(back, record);
    }
}
