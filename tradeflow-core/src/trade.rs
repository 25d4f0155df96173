//! The trade record of the mapping spec (SPEC §1): one fill, typed and cast.

use std::fmt;

use chrono::NaiveDateTime;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    #[serde(rename = "B")]
    Buy,
    #[serde(rename = "S")]
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "B",
            Side::Sell => "S",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One trade line, renamed and cast per the mapping spec.
///
/// `activity_time` is the wall-clock time of the configured zone exactly as the log prints it
/// (nanosecond precision); its date is the summary's `trade_date`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_no: Option<i64>,
    pub activity_time: NaiveDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<i64>,
    pub symbol: CompactString,
    pub side: Side,
    /// Exact decimal, never negative. On the wire a JSON string read by [`wire_price`].
    #[serde(deserialize_with = "price_text")]
    pub price: Decimal,
    /// Never negative; zero-quantity fills are valid.
    pub quantity: i64,
    pub account_id: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i32>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_order_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_response_type: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exch_ts: Option<CompactString>,
}

/// A [`Trade`] borrowing its text fields from the line it was parsed from: the ingestor's per-line
/// path parses into this and writes the record from it, copying no string on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradeRef<'a> {
    pub order_no: Option<i64>,
    pub activity_time: NaiveDateTime,
    pub fill_number: Option<i64>,
    pub response_type: Option<&'a str>,
    pub order_id: Option<i64>,
    pub symbol: &'a str,
    pub side: Side,
    pub price: Decimal,
    pub quantity: i64,
    pub account_id: &'a str,
    pub error_code: Option<i32>,
    pub timestamp: Option<i64>,
    pub exchange_order_id: Option<&'a str>,
    pub child_response_type: Option<&'a str>,
    pub duration: Option<&'a str>,
    pub exch_ts: Option<&'a str>,
}

impl TradeRef<'_> {
    pub fn to_trade(&self) -> Trade {
        Trade {
            order_no: self.order_no,
            activity_time: self.activity_time,
            fill_number: self.fill_number,
            response_type: self.response_type.map(CompactString::from),
            order_id: self.order_id,
            symbol: self.symbol.into(),
            side: self.side,
            price: self.price,
            quantity: self.quantity,
            account_id: self.account_id.into(),
            error_code: self.error_code,
            timestamp: self.timestamp,
            exchange_order_id: self.exchange_order_id.map(CompactString::from),
            child_response_type: self.child_response_type.map(CompactString::from),
            duration: self.duration.map(CompactString::from),
            exch_ts: self.exch_ts.map(CompactString::from),
        }
    }
}

impl Trade {
    /// This trade as a [`TradeRef`].
    pub fn borrowed(&self) -> TradeRef<'_> {
        TradeRef {
            order_no: self.order_no,
            activity_time: self.activity_time,
            fill_number: self.fill_number,
            response_type: self.response_type.as_deref(),
            order_id: self.order_id,
            symbol: &self.symbol,
            side: self.side,
            price: self.price,
            quantity: self.quantity,
            account_id: &self.account_id,
            error_code: self.error_code,
            timestamp: self.timestamp,
            exchange_order_id: self.exchange_order_id.as_deref(),
            child_response_type: self.child_response_type.as_deref(),
            duration: self.duration.as_deref(),
            exch_ts: self.exch_ts.as_deref(),
        }
    }

    /// `n` template trades ([`Trade::from_template`]), the same on every call: one every ~67 ms
    /// from 2026-11-22 09:30:00 UTC, symbols of five, accounts of three, prices 0.00–999.99,
    /// quantities 0–99, sides at random (xorshift, fixed seed). The benchmarks' input.
    pub fn samples(n: usize) -> Vec<Trade> {
        const SYMBOLS: [&str; 5] = ["BANKNIFTY", "AAPL", "AMZN", "FB", "GOOG"];
        const ACCOUNTS: [&str; 3] = ["CQ01", "CQ02", "CQ03"];
        let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).and_then(|d| d.and_hms_opt(9, 30, 0));
        let start = start.unwrap_or_default();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let time = start + chrono::Duration::nanoseconds(i as i64 * 66_666_667 + (next() % 1000) as i64);
                let symbol = SYMBOLS[(next() % 5) as usize];
                let side = if next() % 2 == 0 { Side::Buy } else { Side::Sell };
                let price = Decimal::new((next() % 100_000) as i64, 2);
                let quantity = (next() % 100) as i64;
                Trade::from_template(time, symbol, side, price, quantity, ACCOUNTS[(next() % 3) as usize])
            })
            .collect()
    }

    /// A trade with the constant fields of the SPEC §1 template line (what the mock feed writes)
    /// and the six varying ones given.
    pub fn from_template(
        activity_time: NaiveDateTime,
        symbol: &str,
        side: Side,
        price: Decimal,
        quantity: i64,
        account_id: &str,
    ) -> Self {
        Trade {
            order_no: Some(16000000000001),
            activity_time,
            fill_number: Some(600110663),
            response_type: Some("TRADE_CONFIRM".into()),
            order_id: Some(1),
            symbol: symbol.into(),
            side,
            price,
            quantity,
            account_id: account_id.into(),
            error_code: Some(0),
            timestamp: Some(1633924085),
            exchange_order_id: Some("483425880054544049 6".into()),
            child_response_type: Some("NULL_RESPONSE_MIDDLE".into()),
            duration: Some("GTC".into()),
            exch_ts: Some("33959 25290703".into()),
        }
    }

    /// price × quantity, exact.
    pub fn notional(&self) -> Decimal {
        self.price * Decimal::from(self.quantity)
    }

    /// The summary's `trade_date`: the date of `activity_time`.
    pub fn trade_date(&self) -> chrono::NaiveDate {
        self.activity_time.date()
    }
}

/// A `trades` record's price text, read as SPEC §1 reads a log line's Price (plain decimal digits,
/// exactly), with an optional leading `-` so that a negative price reaches the edge contract and
/// gets the line's verdict (`bad_value`). Anything else serde's `Decimal` would read — `+`, an
/// exponent, digit separators, blanks, more digits than a decimal holds — is refused, never
/// rounded or read another way. The error is the reason.
pub(crate) fn wire_price(text: &str) -> Result<Decimal, &'static str> {
    match text.strip_prefix('-') {
        Some(digits) => crate::log_format::cast_price(digits).map(|d| -d),
        None => crate::log_format::cast_price(text),
    }
}

/// Serde's side of [`wire_price`]: a JSON string (a JSON number is a float: refused).
fn price_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let text = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
    wire_price(&text).map_err(|why| <D::Error as serde::de::Error>::custom(format!("price {text:?}: {why}")))
}
