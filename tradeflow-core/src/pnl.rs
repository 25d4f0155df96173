//! P&L of a summary row (SPEC §3, "P&L and holdings"; worked example in `docs/pnl.md`).
//!
//! A row is one trade date's book of one (client, account, symbol). Its P&L is defined from the
//! row's sums only, so it is **order-independent**: live, replay, backfill and the oracle apply the
//! same trades in different orders, reach the same sums, and so the same P&L.
//!
//! - **realized P&L** = matched_qty × (avg_sell_price − avg_buy_price), matched_qty =
//!   min(buy_qty, sell_qty); 0 when nothing is matched. The averages are the row's own, rounded to
//!   [`AVG_PRICE_SCALE`](crate::summary::AVG_PRICE_SCALE) places half-even — the one rounding rule;
//!   the product is exact (at most 8 decimal places). A trading field: compared exactly.
//! - **total P&L** (mark-to-market) = sell_notional − buy_notional + net_qty × mark_price. Exact.
//! - **unrealized P&L** = total − realized (≈ net_qty × (mark − average price of the open side);
//!   the averages' rounding residue, below 10⁻⁸ per matched unit, lands here so that the split adds up).
//!
//! Total and unrealized are null without a mark, as market value is. Every operation is exact or
//! none at all: a figure that does not fit a 28-digit decimal (a book far beyond any real one) is
//! null rather than rounded — see [`exact`].

use rust_decimal::Decimal;

/// The P&L fields of a row, in the currency of its prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RowPnl {
    /// Realized P&L; `None` only when not representable.
    pub realized: Option<Decimal>,
    /// Unrealized P&L; `None` without a mark (or when not representable).
    pub unrealized: Option<Decimal>,
    /// Total (mark-to-market) P&L; `None` without a mark (or when not representable).
    pub total: Option<Decimal>,
}

/// The book a row's P&L is computed from (the row's sums and rounded averages).
#[derive(Clone, Copy, Debug)]
pub struct Book {
    pub buy_qty: i64,
    pub sell_qty: i64,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    pub avg_buy_price: Option<Decimal>,
    pub avg_sell_price: Option<Decimal>,
}

impl Book {
    /// min(buy_qty, sell_qty): the quantity bought and sold again within the row.
    pub fn matched_qty(&self) -> i64 {
        self.buy_qty.min(self.sell_qty)
    }

    /// buy_qty − sell_qty, the position.
    pub fn net_qty(&self) -> i128 {
        self.buy_qty as i128 - self.sell_qty as i128
    }

    /// matched_qty × (avg_sell_price − avg_buy_price); 0 when nothing is matched.
    pub fn realized(&self) -> Option<Decimal> {
        let matched = self.matched_qty();
        if matched == 0 {
            return Some(Decimal::ZERO);
        }
        let spread = exact::sub(self.avg_sell_price?, self.avg_buy_price?)?;
        exact::mul_qty(matched as i128, spread)
    }

    /// sell_notional − buy_notional + net_qty × mark.
    pub fn total(&self, mark: Decimal) -> Option<Decimal> {
        let cash = exact::sub(self.sell_notional, self.buy_notional)?;
        exact::add(cash, exact::mul_qty(self.net_qty(), mark)?)
    }

    /// The three P&L fields against `mark` (none: total and unrealized are null).
    pub fn pnl(&self, mark: Option<Decimal>) -> RowPnl {
        let realized = self.realized();
        let total = mark.and_then(|m| self.total(m));
        let unrealized = match (total, realized) {
            (Some(t), Some(r)) => exact::sub(t, r),
            _ => None,
        };
        RowPnl { realized, unrealized, total }
    }
}

/// The exact arithmetic P&L uses: [`crate::exact`]'s (the result, or `None` where `rust_decimal`
/// would overflow or round), under short names.
pub mod exact {
    pub use crate::exact::{
        checked_exact_add as add, checked_exact_mul as mul, checked_exact_mul_qty as mul_qty, checked_exact_sub as sub,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn book(bq: i64, sq: i64, bn: &str, sn: &str) -> Book {
        let avg = |n: Decimal, q: i64| {
            (q != 0).then(|| {
                // The rows' rule (summary::AVG_PRICE_SCALE): 8 places, half-even.
                (n / Decimal::from(q)).round_dp_with_strategy(8, rust_decimal::RoundingStrategy::MidpointNearestEven)
            })
        };
        Book {
            buy_qty: bq,
            sell_qty: sq,
            buy_notional: d(bn),
            sell_notional: d(sn),
            avg_buy_price: avg(d(bn), bq),
            avg_sell_price: avg(d(sn), sq),
        }
    }

    #[test]
    fn worked_example_of_the_docs() {
        // docs/pnl.md: buy 100 @ 10.00, buy 50 @ 10.30, sell 120 @ 10.50; mark 10.40.
        let b = book(150, 120, "1515.00", "1260.00");
        assert_eq!(b.avg_buy_price, Some(d("10.1")));
        let pnl = b.pnl(Some(d("10.40")));
        assert_eq!(pnl.realized, Some(d("48.00"))); // 120 × (10.50 − 10.10)
        assert_eq!(pnl.total, Some(d("57.00"))); // 1260 − 1515 + 30 × 10.40
        assert_eq!(pnl.unrealized, Some(d("9.00"))); // 30 × (10.40 − 10.10)
        assert_eq!(b.pnl(None), RowPnl { realized: Some(d("48.00")), unrealized: None, total: None });
    }

    #[test]
    fn rounding_residue_lands_in_unrealized() {
        // Three buys at 1, 1, 2 → average 1.33333333 (rounded); sell 3 at 2.
        let b = book(3, 3, "4", "6");
        let pnl = b.pnl(Some(d("5")));
        assert_eq!(pnl.realized, Some(d("2.00000001"))); // 3 × (2 − 1.33333333)
        assert_eq!(pnl.total, Some(d("2")));
        assert_eq!(pnl.unrealized, Some(d("-0.00000001")));
    }

    #[test]
    fn nothing_matched_is_zero_realized() {
        let b = book(10, 0, "100", "0");
        assert_eq!(b.realized(), Some(Decimal::ZERO));
        assert_eq!(b.pnl(Some(d("11"))).unrealized, Some(d("10")));
        let short = book(0, 5, "0", "50");
        assert_eq!(short.pnl(Some(d("11"))).total, Some(d("-5")));
    }

    #[test]
    fn exact_or_none() {
        assert_eq!(exact::add(d("0.1"), d("0.02")), Some(d("0.12")));
        assert_eq!(exact::mul(d("1.5"), d("-2.25")), Some(d("-3.375")));
        // Decimal's own product rounds here (the mantissa outgrows 96 bits); the exact one refuses.
        let odd = Decimal::from_i128_with_scale((1i128 << 95) + 1, 28);
        assert_ne!(odd.checked_mul(Decimal::from(3)), None);
        assert_eq!(exact::mul_qty(3, odd), None);
        assert_eq!(exact::mul_qty(i64::MAX as i128, Decimal::MAX), None);
        assert_eq!(exact::add(Decimal::MAX, Decimal::ONE), None);
        // Trailing zeros beyond the 28 places are dropped, exactly.
        assert_eq!(exact::mul(d("0.10000000000000000"), d("0.10000000000000")), Some(d("0.01")));
    }
}
