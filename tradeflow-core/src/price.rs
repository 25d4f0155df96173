//! A market price tick on `prices` (key = symbol, compacted), how every receiver decodes it
//! ([`PriceTick::from_json`]: its price read by the log line's `Price` rule) and the rule it
//! applies before the tick moves a mark ([`PriceTick::check`]).

use chrono::{DateTime, TimeDelta, Utc};
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::log_format::{ParseError, parse_price};

/// How far a tick's `at` may be ahead of the receiver's clock: 5 s. Time from outside is checked
/// (issue 23, case 5): marks keep the newest tick by `at`, so one tick dated in the future would
/// otherwise hide every live tick after it until its date passed. 5 s covers clock skew between
/// hosts kept by NTP (milliseconds) with a wide margin, and is far below the 60 s after which a
/// mark is stale (SPEC §3).
pub const FUTURE_TOLERANCE: TimeDelta = TimeDelta::seconds(5);

/// Largest price a tick may carry: 10^9. A mark multiplies a position (`net_qty`, below 2^63 ≈
/// 9.2 × 10^18 in size) into a market value, which must stay inside `rust_decimal`'s range
/// (about 7.9 × 10^28): 10^9 × 9.2 × 10^18 does. No traded instrument is priced near it.
pub const MAX_PRICE: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// A tick as JSON: `{"symbol": "AAPL", "price": "123.45", "at": "2026-11-22T09:30:00Z"}` (the price
/// a string, as [`Self::to_json`] writes it). Decoded only by [`Self::from_json`], which holds the
/// price to the log line's `Price` rule; there is deliberately no `Deserialize` (serde's decimal
/// would also take `"1e3"`, `"1_000"`, `"+1"` or a float).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceTick {
    pub symbol: CompactString,
    pub price: Decimal,
    pub at: DateTime<Utc>,
}

/// The wire form, the price unread.
#[derive(Deserialize)]
struct RawTick<'a> {
    symbol: CompactString,
    #[serde(borrow)]
    price: &'a RawValue,
    at: DateTime<Utc>,
}

/// Why a record on `prices` moves no mark, as [`PriceTick::from_json`] finds it: not a tick at
/// all, or a tick whose price is not written as a log line's `Price` may be.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// Not JSON, or not an object with `symbol`, `price` and `at`.
    #[error("not a price tick: {0}")]
    Undecodable(#[from] serde_json::Error),
    #[error(transparent)]
    Refused(#[from] TickRefusal),
}

impl TickError {
    /// The metric label: `undecodable`, or the refusal's [`TickRefusal::code`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::Undecodable(_) => "undecodable",
            Self::Refused(why) => why.code(),
        }
    }
}

/// Why a receiver refused a tick: it is counted by reason ([`Self::code`]) and logged with its
/// partition and offset, and it moves no mark. The tick stays on `prices`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TickRefusal {
    #[error("dated {ahead} ahead of this host's clock (tolerance {FUTURE_TOLERANCE})")]
    Future { ahead: TimeDelta },
    #[error("negative price {0}")]
    NegativePrice(Decimal),
    #[error("price {0} above the limit {MAX_PRICE}")]
    PriceTooLarge(Decimal),
    #[error("empty symbol")]
    EmptySymbol,
    /// More decimal places than a trade price may have (docs/edge.md: 8), so a mark times any
    /// position stays inside exact decimal range.
    #[error("price {0} has more than {max} decimal places", max = crate::edge::MAX_PRICE_DECIMALS)]
    TooPrecise(Decimal),
    /// A symbol a trade could not have (docs/edge.md: 1–32 bytes, no control characters).
    #[error("symbol {0:?} is not a valid symbol (1–32 bytes, no control characters)")]
    BadSymbol(CompactString),
    /// A price not written as a log line's `Price` may be ([`parse_price`], docs/edge.md): plain
    /// digits with at most one `.` — no sign, exponent (`1e3`), separators or blanks — at most 10
    /// integer and 8 decimal digits. Found by [`PriceTick::from_json`], before there is a tick.
    #[error("price {text} refused by the trade log's Price rule (docs/edge.md): {reason}")]
    BadPrice { text: String, reason: ParseError },
}

impl TickRefusal {
    /// The metric label of the refusal: `future`, `negative_price`, `price_too_large`, `empty_symbol`
    /// (a record that is not a tick at all is counted as `undecodable` by its consumer).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Future { .. } => "future",
            Self::NegativePrice(_) => "negative_price",
            Self::PriceTooLarge(_) => "price_too_large",
            Self::EmptySymbol => "empty_symbol",
            Self::TooPrecise(_) => "price_too_precise",
            Self::BadSymbol(_) => "bad_symbol",
            Self::BadPrice { reason, .. } => match reason {
                ParseError::PriceTooPrecise { .. } => "price_too_precise",
                ParseError::PriceTooLarge { .. } => "price_too_large",
                _ => "bad_price",
            },
        }
    }
}

impl PriceTick {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data (strings, decimals as strings, timestamps) cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a tick. Its price is read by the log line's `Price` rule ([`parse_price`]): a JSON
    /// string, or a JSON number as written (its digits, never a float), holding plain digits with
    /// at most one `.`. Anything else (`"1e3"`, `"-1"`, `"1_000"`, `" 1"`, `1e3`, `null`) is
    /// [`TickRefusal::BadPrice`], counted and logged by the receiver like any refused tick.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TickError> {
        let raw: RawTick<'_> = serde_json::from_slice(bytes)?;
        let json = raw.price.get();
        let text = if json.starts_with('"') { serde_json::from_str::<String>(json)? } else { json.to_owned() };
        let price = parse_price(&text).map_err(|reason| TickRefusal::BadPrice { text: json.to_owned(), reason })?;
        Ok(PriceTick { symbol: raw.symbol, price, at: raw.at })
    }

    /// Whether the tick may move a mark, judged at the receiver's clock `now`: `at` at most
    /// [`FUTURE_TOLERANCE`] ahead of `now`, a price in `0..=`[`MAX_PRICE`] (SPEC §1: prices are
    /// ≥ 0) with at most 8 decimal places, a symbol a trade could have (docs/edge.md). A tick from the past is accepted (marks go stale by age).
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), TickRefusal> {
        if self.symbol.is_empty() {
            return Err(TickRefusal::EmptySymbol);
        }
        if self.price.is_sign_negative() && !self.price.is_zero() {
            return Err(TickRefusal::NegativePrice(self.price));
        }
        if self.price > MAX_PRICE {
            return Err(TickRefusal::PriceTooLarge(self.price));
        }
        if self.price.scale() > crate::edge::MAX_PRICE_DECIMALS {
            return Err(TickRefusal::TooPrecise(self.price));
        }
        if crate::edge::check_outside_key("Symbol", &self.symbol).is_err() {
            return Err(TickRefusal::BadSymbol(self.symbol.clone()));
        }
        let ahead = self.at - now;
        if ahead > FUTURE_TOLERANCE {
            return Err(TickRefusal::Future { ahead });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(price: &str, at: DateTime<Utc>) -> PriceTick {
        PriceTick { symbol: "AAPL".into(), price: price.parse().unwrap(), at }
    }

    #[test]
    fn a_tick_too_far_in_the_future_is_refused_and_one_within_the_tolerance_is_not() {
        let now = Utc::now();
        assert_eq!(tick("1", now + TimeDelta::seconds(5)).check(now), Ok(()));
        assert_eq!(tick("1", now - TimeDelta::days(3)).check(now), Ok(()));
        let far = tick("999.99", "2030-01-01T00:00:00Z".parse().unwrap()).check(now).unwrap_err();
        assert_eq!(far.code(), "future");
        let just = tick("1", now + TimeDelta::milliseconds(5001)).check(now).unwrap_err();
        assert_eq!(just, TickRefusal::Future { ahead: TimeDelta::milliseconds(5001) });
    }

    #[test]
    fn a_price_more_precise_than_a_trade_price_or_an_odd_symbol_is_refused() {
        let now = Utc::now();
        assert_eq!(tick("777.12345678", now).check(now), Ok(()));
        let fine = tick("777.1234567890123456789012345", now).check(now).unwrap_err();
        assert_eq!(fine.code(), "price_too_precise");
        let nul = PriceTick { symbol: "AA\0PL".into(), price: Decimal::ONE, at: now };
        assert_eq!(nul.check(now).unwrap_err().code(), "bad_symbol");
        let long = PriceTick { symbol: "A".repeat(33).into(), price: Decimal::ONE, at: now };
        assert_eq!(long.check(now).unwrap_err().code(), "bad_symbol");
    }

    /// Ticks are held to the log line's `Price` rule: `"1e3"` (which serde's decimal takes for
    /// 1000) and every other form a log line may not carry are refused, with a code and reason.
    #[test]
    fn a_tick_price_follows_the_log_line_price_rule() {
        let json = |price: &str| format!(r#"{{"symbol":"AAPL","price":{price},"at":"2026-11-22T09:30:00Z"}}"#);
        let decode = |price: &str| PriceTick::from_json(json(price).as_bytes());
        for good in [r#""123.45""#, r#""0""#, r#""007.50""#, "123.45", "1000000000"] {
            assert!(decode(good).is_ok(), "{good}");
        }
        assert_eq!(decode(r#""123.450""#).unwrap().price.to_string(), "123.450", "the scale as written");
        assert_eq!(decode("123.40").unwrap().price.to_string(), "123.40", "a JSON number keeps its digits");
        for bad in [
            r#""1e3""#,
            "1e3",
            r#""1E3""#,
            r#""-1""#,
            r#""-0.00""#,
            r#""+1""#,
            r#""1_000""#,
            r#"" 1""#,
            r#""1,000""#,
            r#""""#,
            r#"".5""#,
            r#""5.""#,
            r#""NaN""#,
            "null",
            "true",
            r#""1.2.3""#,
        ] {
            let e = decode(bad).unwrap_err();
            assert_eq!(e.code(), "bad_price", "{bad}: {e}");
            assert!(e.to_string().contains("Price rule"), "{e}");
        }
        assert_eq!(decode(r#""1.123456789""#).unwrap_err().code(), "price_too_precise");
        assert_eq!(decode(r#""12345678901""#).unwrap_err().code(), "price_too_large");
        assert_eq!(PriceTick::from_json(b"{}").unwrap_err().code(), "undecodable");
        let tick = PriceTick { symbol: "AAPL".into(), price: "1.50".parse().unwrap(), at: Utc::now() };
        assert_eq!(PriceTick::from_json(&tick.to_json()).unwrap(), tick, "what the producer writes reads back");
    }

    #[test]
    fn prices_outside_zero_to_the_limit_are_refused() {
        let now = Utc::now();
        assert_eq!(tick("0", now).check(now), Ok(()));
        assert_eq!(tick("-0.00", now).check(now), Ok(()));
        assert_eq!(tick("1000000000", now).check(now), Ok(()));
        assert_eq!(tick("-0.01", now).check(now).unwrap_err().code(), "negative_price");
        assert_eq!(tick("1000000000.01", now).check(now).unwrap_err().code(), "price_too_large");
        let empty = PriceTick { symbol: "".into(), price: Decimal::ONE, at: now };
        assert_eq!(empty.check(now), Err(TickRefusal::EmptySymbol));
    }
}
