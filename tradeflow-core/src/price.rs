//! A market price tick on `prices` (key = symbol, compacted), and the rule every receiver applies
//! to it before it moves a mark ([`PriceTick::check`]).

use chrono::{DateTime, TimeDelta, Utc};
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceTick {
    pub symbol: CompactString,
    pub price: Decimal,
    pub at: DateTime<Utc>,
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
        }
    }
}

impl PriceTick {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data (strings, decimals as strings, timestamps) cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
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
