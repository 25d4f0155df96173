//! A hand-written reader for trade records as [`TradeRecord::write_json`] writes them: the replay
//! path decodes every record of `trades`, and serde's general machinery was most of its cost.
//!
//! It accepts a subset of JSON — one object of the record's fields, in any order, with string
//! values free of escapes and control characters, canonical integers, no `null` — and returns
//! `None` for anything else (an escape, an unknown or repeated key, a value it does not read
//! exactly as serde would), so the caller falls back to `serde_json`. Whatever it accepts decodes
//! to what serde would decode: the tests hold it to that on every input they try.

use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};
use compact_str::CompactString;
use rust_decimal::Decimal;

use super::{TradeId, TradeRecord};
use crate::client::ClientId;
use crate::trade::{Side, Trade};

/// The record, or `None` where `serde_json` must decide.
pub(super) fn decode(bytes: &[u8]) -> Option<TradeRecord> {
    // UTF-8 checked once for the whole record (serde refuses invalid UTF-8 in a string, and
    // outside one it is no JSON): one call on ~400 bytes instead of one per string value.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut r = Reader { text, bytes, at: 0 };
    let (mut id, mut trade) = (None, None);
    r.object(|r, key| match key {
        b"id" if id.is_none() => {
            id = Some(r.trade_id()?);
            Some(())
        }
        b"trade" if trade.is_none() => {
            trade = Some(r.trade()?);
            Some(())
        }
        _ => None,
    })?;
    r.ws();
    (r.at == bytes.len()).then_some(())?;
    Some(TradeRecord { id: id?, trade: trade? })
}

struct Reader<'a> {
    /// The record, valid UTF-8; `bytes` is the same.
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// One optional field, refused when repeated.
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// `{ "key": value, … }`, each value read by `field` (which must consume it).
    fn object(&mut self, mut field: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.raw_str()?;
            self.eat(b':')?;
            field(self, key)?;
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    /// A string's bytes: none an escape or a control character (those go to serde).
    fn raw_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let len = string_end(&self.bytes[start..])?;
        // The closing quote itself: not `eat`, which would skip a raw newline or tab inside the
        // string (serde refuses those) and take the quote after it.
        (self.bytes[start + len] == b'"').then_some(())?;
        self.at = start + len + 1;
        Some(&self.bytes[start..start + len])
    }

    fn str(&mut self) -> Option<&'a str> {
        let raw = self.raw_str()?;
        // Between two quotes (ASCII), so on character boundaries: the slice cannot fail.
        let end = self.at - 1;
        self.text.get(end - raw.len()..end)
    }

    fn compact(&mut self) -> Option<CompactString> {
        self.str().map(CompactString::from)
    }

    /// An integer as JSON writes it (`-?(0|[1-9][0-9]*)`), in `T`'s range. Accumulated as it is
    /// scanned (at most 20 digits: more is outside every field's type, for serde too).
    fn int<T: TryFrom<i128>>(&mut self) -> Option<T> {
        self.ws();
        let negative = self.bytes.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let start = self.at;
        let mut value: i128 = 0;
        while let Some(&b @ b'0'..=b'9') = self.bytes.get(self.at) {
            value = value * 10 + i128::from(b - b'0');
            self.at += 1;
            if self.at - start > 20 {
                return None;
            }
        }
        let digits = self.at - start;
        // No leading zero, no fraction or exponent, and no `-0` (serde reads that as the float
        // −0.0 and refuses it for an integer).
        if digits == 0
            || (negative && value == 0)
            || (self.bytes[start] == b'0' && digits > 1)
            || matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        T::try_from(if negative { -value } else { value }).ok()
    }

    fn trade_id(&mut self) -> Option<TradeId> {
        let (mut client, mut date, mut generation, mut offset) = (None, None, None, None);
        self.object(|r, key| match key {
            b"client" => once(&mut client, r.str().and_then(|s| ClientId::parse(s).ok())),
            b"date" => once(&mut date, r.str().and_then(date_of)),
            b"generation" => once(&mut generation, r.int()),
            b"offset" => once(&mut offset, r.int()),
            _ => None,
        })?;
        Some(TradeId { client: client?, date: date?, generation: generation?, offset: offset? })
    }

    fn trade(&mut self) -> Option<Trade> {
        let mut t = Fields::default();
        self.object(|r, key| match key {
            b"order_no" => once(&mut t.order_no, r.int()),
            b"activity_time" => once(&mut t.activity_time, r.str().and_then(time_of)),
            b"fill_number" => once(&mut t.fill_number, r.int()),
            b"response_type" => once(&mut t.response_type, r.compact()),
            b"order_id" => once(&mut t.order_id, r.int()),
            b"symbol" => once(&mut t.symbol, r.compact()),
            b"side" => once(
                &mut t.side,
                match r.str()? {
                    "B" => Some(Side::Buy),
                    "S" => Some(Side::Sell),
                    _ => None,
                },
            ),
            b"price" => once(&mut t.price, r.str().and_then(|s| crate::trade::wire_price(s).ok())),
            b"quantity" => once(&mut t.quantity, r.int()),
            b"account_id" => once(&mut t.account_id, r.compact()),
            b"error_code" => once(&mut t.error_code, r.int()),
            b"timestamp" => once(&mut t.timestamp, r.int()),
            b"exchange_order_id" => once(&mut t.exchange_order_id, r.compact()),
            b"child_response_type" => once(&mut t.child_response_type, r.compact()),
            b"duration" => once(&mut t.duration, r.compact()),
            b"exch_ts" => once(&mut t.exch_ts, r.compact()),
            _ => None,
        })?;
        Some(Trade {
            order_no: t.order_no,
            activity_time: t.activity_time?,
            fill_number: t.fill_number,
            response_type: t.response_type,
            order_id: t.order_id,
            symbol: t.symbol?,
            side: t.side?,
            price: t.price?,
            quantity: t.quantity?,
            account_id: t.account_id?,
            error_code: t.error_code,
            timestamp: t.timestamp,
            exchange_order_id: t.exchange_order_id,
            child_response_type: t.child_response_type,
            duration: t.duration,
            exch_ts: t.exch_ts,
        })
    }
}

/// The index of the first byte of `s` that ends a plain string's bytes: a `"`, a `\\` or a
/// control character (below 0x20). Eight bytes at a time (SWAR: a byte equal to `c` is a zero byte
/// of `x ^ c`, found with the borrow trick; a byte below 0x20 borrows from `x - 0x20`). A flag
/// above the lowest true hit may be false (a borrow carries upwards), so the lowest is exact.
/// On these short strings it is faster than `memchr2` (a call per string) and the byte loop.
fn string_end(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = ONES * 0x80;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hits = (zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGHS;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|i| at + i)
}

/// A trade's fields as read so far.
#[derive(Default)]
struct Fields {
    order_no: Option<i64>,
    activity_time: Option<NaiveDateTime>,
    fill_number: Option<i64>,
    response_type: Option<CompactString>,
    order_id: Option<i64>,
    symbol: Option<CompactString>,
    side: Option<Side>,
    price: Option<Decimal>,
    quantity: Option<i64>,
    account_id: Option<CompactString>,
    error_code: Option<i32>,
    timestamp: Option<i64>,
    exchange_order_id: Option<CompactString>,
    child_response_type: Option<CompactString>,
    duration: Option<CompactString>,
    exch_ts: Option<CompactString>,
}

/// The `n` digits at `s[at..]` as a number.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    s.get(at..at + n)?.iter().try_fold(0u32, |v, &b| b.is_ascii_digit().then(|| v * 10 + u32::from(b - b'0')))
}

/// The year, month and day of `YYYY-MM-DD` (the form only: the date may not exist).
fn ymd(b: &[u8]) -> Option<(u32, u32, u32)> {
    (b.len() == 10 && b[4] == b'-' && b[7] == b'-').then_some(())?;
    Some((digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?))
}

/// `YYYY-MM-DD`, the form the writer uses; anything else through chrono's own parser (serde's).
fn date_of(s: &str) -> Option<NaiveDate> {
    match ymd(s.as_bytes()) {
        Some((y, m, d)) => NaiveDate::from_ymd_opt(y as i32, m, d),
        None => NaiveDate::from_str(s).ok(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn`, the form the writer uses; anything else through chrono's own
/// parser (serde's). A leap second (`:60`) also goes to chrono.
fn time_of(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() == 29
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && let (Some((y, mo, d)), Some(h), Some(m), Some(sec), Some(nano)) =
            (ymd(&b[..10]), digits(b, 11, 2), digits(b, 14, 2), digits(b, 17, 2), digits(b, 20, 9))
        && sec < 60
    {
        return NaiveDate::from_ymd_opt(y as i32, mo, d)?.and_hms_nano_opt(h, m, sec, nano);
    }
    NaiveDateTime::from_str(s).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn serde(bytes: &[u8]) -> Option<TradeRecord> {
        serde_json::from_slice(bytes).ok()
    }

    fn record(trade: Trade, offset: u64) -> TradeRecord {
        TradeRecord {
            id: TradeId {
                client: ClientId::parse("client_7").unwrap(),
                date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
                generation: 2,
                offset,
            },
            trade,
        }
    }

    fn template() -> Trade {
        let t = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap().and_hms_nano_opt(9, 30, 0, 123_456_789).unwrap();
        Trade::from_template(t, "AAPL", Side::Sell, Decimal::new(-10025, 2), 42, "CQ01")
    }

    #[test]
    fn reads_what_the_writer_writes() {
        let r = record(template(), 12_345);
        assert_eq!(decode(&r.to_json()), Some(r.clone()));
        let mut bare = template();
        (bare.order_no, bare.fill_number, bare.response_type, bare.exch_ts) = (None, None, None, None);
        let r = record(bare, 0);
        assert_eq!(decode(&r.to_json()), Some(r));
    }

    #[test]
    fn any_order_and_whitespace() {
        let json = r#" { "trade" : { "symbol":"X", "side":"B", "quantity":0, "account_id":"A", "price":"1.50",
            "activity_time":"2026-11-22T09:30:00.000000001" } ,
            "id":{"offset":7,"generation":0,"date":"2026-11-22","client":"c"} } "#;
        let fast = decode(json.as_bytes());
        assert!(fast.is_some());
        assert_eq!(fast, serde(json.as_bytes()));
    }

    #[test]
    fn leaves_to_serde_what_it_does_not_read_exactly() {
        let base = String::from_utf8(record(template(), 1).to_json()).unwrap();
        for (from, to) in [
            ("\"symbol\":\"AAPL\"", "\"symbol\":\"A\\u0041PL\""),   // an escape
            ("\"order_no\":16000000000001", "\"order_no\":null"),   // null
            ("\"quantity\":42", "\"quantity\":042"),                // leading zero: serde refuses
            ("\"quantity\":42", "\"quantity\":42.0"),               // a fraction: serde refuses
            ("\"quantity\":42", "\"quantity\":-0"),                 // −0.0 to serde: refused
            ("\"offset\":1}", "\"offset\":-0}"),                    // the same for an unsigned field
            ("\"quantity\":42", "\"quantity\":42,\"quantity\":43"), // repeated: serde refuses
            ("\"quantity\":42", "\"quantity\":42,\"extra\":1"),     // unknown: serde ignores
            ("\"generation\":2", "\"generation\":-1"),              // out of range
            ("\"client\":\"client_7\"", "\"client\":\"../x\""),     // not a client id
            ("\"side\":\"S\"", "\"side\":\"X\""),
            ("\"symbol\":\"AAPL\"", "\"symbol\":\"AAPL\n\""), // a raw newline before the quote
            ("\"symbol\":\"AAPL\"", "\"symbol\":\"AAPL\t\""), // a raw tab before the quote
        ] {
            assert!(base.contains(from), "{from}");
            let json = base.replacen(from, to, 1);
            assert_eq!(decode(json.as_bytes()), None, "{json}");
        }
        // Forms other than the writer's go through chrono's parser, as in serde: the same result.
        for (from, to) in
            [("09:30:00.123456789", "09:30:60.123456789"), ("00.123456789", "00"), ("2026-11-22\"", "2026-11-22 \"")]
        {
            let json = base.replacen(from, to, 1);
            assert_eq!(decode(json.as_bytes()), serde(json.as_bytes()), "{json}");
        }
        assert_eq!(decode(format!("{base}x").as_bytes()), None);
        assert_eq!(decode(&base.as_bytes()[..base.len() - 1]), None);
    }

    /// A record's price is read as the log line's Price (SPEC §1), on both paths: the forms
    /// serde's `Decimal` would also read (a JSON number — a float —, `+`, an exponent, digit
    /// separators, blanks, digits past what a decimal holds) make the record undecodable, never
    /// rounded or read another way. A `-` is read, so the edge contract refuses it with the line's
    /// verdict (`bad_value`, tests/edge_contract.rs).
    #[test]
    fn a_price_is_plain_decimal_digits_in_a_string_on_both_paths() {
        let base = String::from_utf8(record(template(), 1).to_json()).unwrap();
        let price = "\"price\":\"-100.25\"";
        assert!(base.contains(price), "{base}");
        for to in [
            "100.25",
            "\"+100.25\"",
            "\"--100.25\"",
            "\"1e2\"",
            "\"1_000\"",
            "\" 100.25\"",
            "\"100.\"",
            "\".25\"",
            "\"-\"",
            "\"\"",
            "\"1.00000000000000000000000000001\"",
        ] {
            let json = base.replacen(price, &format!("\"price\":{to}"), 1);
            assert_eq!(decode(json.as_bytes()), None, "{json}");
            assert!(serde(json.as_bytes()).is_none(), "serde's path refuses it too: {json}");
        }
        for (text, want) in [("0.00000001", Decimal::new(1, 8)), ("-100.25", Decimal::new(-10025, 2))] {
            let json = base.replacen(price, &format!("\"price\":\"{text}\""), 1);
            assert_eq!(decode(json.as_bytes()).map(|r| r.trade.price), Some(want), "{json}");
            assert_eq!(serde(json.as_bytes()).map(|r| r.trade.price), Some(want), "{json}");
        }
    }

    #[test]
    fn string_end_finds_the_first_stop_byte() {
        let naive = |s: &[u8]| s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        let mut cases: Vec<Vec<u8>> = vec![b"".to_vec(), b"AAPL".to_vec(), b"12345678".to_vec()];
        for stop in [b'"', b'\\', 0, 0x1F, b'\n'] {
            for at in 0..20 {
                for fill in [b'a', 0x20, 0x21, 0x7F, 0x80, 0xFF, 0xDC, 0x5D] {
                    let mut s = vec![fill; 24];
                    s[at] = stop;
                    s[at + 2] = b'"'; // a later stop does not hide the first
                    cases.push(s);
                }
            }
        }
        for s in &cases {
            assert_eq!(string_end(s), naive(s), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn string_end_agrees_with_the_byte_loop(s in prop::collection::vec(any::<u8>(), 0..40)) {
            let naive = s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_end(&s), naive);
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9 _.-]{1,12}",
            any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
            Just("a\"b\\c\u{1}é".to_owned()),
        ]
    }

    fn trade() -> impl Strategy<Value = Trade> {
        (
            (0i64..=i64::MAX, any::<i64>(), any::<i64>(), any::<i32>(), any::<i64>()),
            (text(), text(), text(), text(), text(), text(), text()),
            (any::<bool>(), 0u32..86_400, 0u32..2_000_000_000, any::<i64>(), 0u32..28),
            any::<[bool; 8]>(),
        )
            .prop_map(
                |((order_no, fill, order_id, error_code, timestamp), s, (buy, secs, nano, price, scale), some)| {
                    let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
                    let time =
                        day.and_hms_nano_opt(secs / 3600, secs / 60 % 60, secs % 60, nano % 1_000_000_000).unwrap();
                    let opt = |i: usize, v: CompactString| some[i].then_some(v);
                    Trade {
                        order_no: some[0].then_some(order_no),
                        activity_time: time,
                        fill_number: some[1].then_some(fill),
                        response_type: opt(2, s.0.into()),
                        order_id: some[3].then_some(order_id),
                        symbol: s.1.into(),
                        side: if buy { Side::Buy } else { Side::Sell },
                        price: Decimal::new(price, scale),
                        quantity: timestamp.rem_euclid(1_000_000),
                        account_id: s.2.into(),
                        error_code: some[4].then_some(error_code),
                        timestamp: some[5].then_some(timestamp),
                        exchange_order_id: opt(6, s.3.into()),
                        child_response_type: opt(7, s.4.into()),
                        duration: opt(2, s.5.into()),
                        exch_ts: opt(3, s.6.into()),
                    }
                },
            )
    }

    proptest! {
        /// Whatever the writer writes reads back to the same record, by either reader.
        #[test]
        fn round_trips(t in trade(), offset in any::<u64>()) {
            let r = record(t, offset);
            let json = r.to_json();
            prop_assert_eq!(serde(&json), Some(r.clone()));
            // The full reader adds the edge contract: a trade outside it is refused, else read back.
            let in_contract = crate::edge::check_trade(&r.trade.borrowed()).is_ok();
            prop_assert_eq!(TradeRecord::from_json(&json).ok(), in_contract.then_some(r));
        }

        /// A trade borrowed and owned again is the same trade (the ingestor writes records from
        /// the borrowed form).
        #[test]
        fn borrowed_trades_own_back_the_same(t in trade()) {
            prop_assert_eq!(t.borrowed().to_trade(), t);
        }

        /// On damaged input it accepts nothing serde would not decode to the same record.
        #[test]
        fn never_disagrees_with_serde(t in trade(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4)) {
            let mut json = record(t, 9).to_json();
            for (at, byte, kind) in edits {
                let i = at.index(json.len());
                match kind {
                    0 => json[i] = byte,
                    1 => json.insert(i, byte),
                    _ => { json.remove(i); }
                }
            }
            if let Some(fast) = decode(&json) {
                prop_assert_eq!(Some(fast), serde(&json), "{}", String::from_utf8_lossy(&json));
            }
        }
    }
}
