//! Holdings (SPEC §3, "P&L and holdings"; `docs/pnl.md#holdings`): one row per (client, account,
//! symbol) across every trade date, from the sums of its summary rows — so, like them,
//! order-independent and exactly once wherever the rows are (Postgres derives them in the view
//! `holdings` from `summary_current`; the oracle from its rows, with this code).
//!
//! - `position` = Σ buy_qty − Σ sell_qty.
//! - `avg_cost` = the average price of the side the position is on, over all dates: Σ buy_notional ÷
//!   Σ buy_qty when long, Σ sell_notional ÷ Σ sell_qty when short, null when flat; rounded to
//!   [`AVG_PRICE_SCALE`] places half-even, from the exact quotient ([`average`]).
//! - `cost_basis` = position × avg_cost (signed, exact).
//! - `realized_pnl` = min(Σ buy_qty, Σ sell_qty) × (avg sell − avg buy), the averages over all dates
//!   rounded as `avg_cost`; 0 when nothing is matched.
//! - With a mark: `market_value` = position × mark, `total_pnl` = Σ sell_notional − Σ buy_notional +
//!   position × mark, `unrealized_pnl` = total − realized.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::client::ClientId;
use crate::pnl::exact;
use crate::summary::{AVG_PRICE_SCALE, Position, SummaryKey};

/// The identity of a holding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HoldingKey {
    pub client_id: ClientId,
    pub account_id: CompactString,
    pub symbol: CompactString,
}

impl HoldingKey {
    pub fn of(key: &SummaryKey) -> Self {
        Self { client_id: key.client_id.clone(), account_id: key.account_id.clone(), symbol: key.symbol.clone() }
    }
}

/// The trading fields of a holding (what must equal the oracle exactly); `None` in a figure means
/// not representable in a 28-digit decimal, or (averages) no quantity on that side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub first_trade_date: NaiveDate,
    pub last_trade_date: NaiveDate,
    pub trade_count: i64,
    pub buy_qty: i128,
    pub sell_qty: i128,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
}

impl Holding {
    fn of(date: NaiveDate, p: &Position) -> Self {
        Holding {
            first_trade_date: date,
            last_trade_date: date,
            trade_count: p.trade_count,
            buy_qty: p.buy_qty.into(),
            sell_qty: p.sell_qty.into(),
            buy_notional: p.buy_notional,
            sell_notional: p.sell_notional,
        }
    }

    /// Adds one date's row; `None` if a sum would not fit.
    fn add(&mut self, date: NaiveDate, p: &Position) -> Option<()> {
        self.first_trade_date = self.first_trade_date.min(date);
        self.last_trade_date = self.last_trade_date.max(date);
        self.trade_count = self.trade_count.checked_add(p.trade_count)?;
        self.buy_qty += i128::from(p.buy_qty);
        self.sell_qty += i128::from(p.sell_qty);
        self.buy_notional = exact::add(self.buy_notional, p.buy_notional)?;
        self.sell_notional = exact::add(self.sell_notional, p.sell_notional)?;
        Some(())
    }

    pub fn position(&self) -> i128 {
        self.buy_qty - self.sell_qty
    }

    pub fn avg_buy_price(&self) -> Option<Decimal> {
        average(self.buy_notional, self.buy_qty)
    }

    pub fn avg_sell_price(&self) -> Option<Decimal> {
        average(self.sell_notional, self.sell_qty)
    }

    /// The average price of the open side; null when flat.
    pub fn avg_cost(&self) -> Option<Decimal> {
        match self.position().signum() {
            1 => self.avg_buy_price(),
            -1 => self.avg_sell_price(),
            _ => None,
        }
    }

    /// position × avg_cost; null when flat.
    pub fn cost_basis(&self) -> Option<Decimal> {
        exact::mul_qty(self.position(), self.avg_cost()?)
    }

    /// min(Σ buy_qty, Σ sell_qty) × (avg sell − avg buy); 0 when nothing is matched.
    pub fn realized_pnl(&self) -> Option<Decimal> {
        let matched = self.buy_qty.min(self.sell_qty);
        if matched == 0 {
            return Some(Decimal::ZERO);
        }
        exact::mul_qty(matched, exact::sub(self.avg_sell_price()?, self.avg_buy_price()?)?)
    }

    /// Σ sell_notional − Σ buy_notional + position × mark.
    pub fn total_pnl(&self, mark: Decimal) -> Option<Decimal> {
        exact::add(exact::sub(self.sell_notional, self.buy_notional)?, exact::mul_qty(self.position(), mark)?)
    }
}

/// notional ÷ qty rounded to [`AVG_PRICE_SCALE`] places half-even, from the exact quotient (integer
/// division of the scaled mantissas: no intermediate rounding, so Postgres's `div`/`mod` in the
/// view `holdings` gives the same digits). `None` when qty is 0 or the figures do not fit.
pub fn average(notional: Decimal, qty: i128) -> Option<Decimal> {
    if qty <= 0 || notional.is_sign_negative() {
        return None;
    }
    // notional = m / 10^s; average × 10^8 = m × 10^(8 − s) / qty (s ≤ 28).
    let m = notional.mantissa();
    let (num, den) = if notional.scale() <= AVG_PRICE_SCALE {
        (m.checked_mul(10i128.checked_pow(AVG_PRICE_SCALE - notional.scale())?)?, qty)
    } else {
        (m, qty.checked_mul(10i128.checked_pow(notional.scale() - AVG_PRICE_SCALE)?)?)
    };
    let (q, r) = (num / den, num % den);
    let up = match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => q % 2 == 1,
        std::cmp::Ordering::Less => false,
    };
    Decimal::try_from_i128_with_scale(q + i128::from(up), AVG_PRICE_SCALE).ok()
}

/// Every holding of `rows` (the summary rows of any dates). A holding whose sums do not fit is
/// left out and its key returned in the second list.
pub fn holdings<'a>(
    rows: impl IntoIterator<Item = (&'a SummaryKey, &'a Position)>,
) -> (BTreeMap<HoldingKey, Holding>, Vec<HoldingKey>) {
    let mut out: BTreeMap<HoldingKey, Holding> = BTreeMap::new();
    let mut overflowed = Vec::new();
    for (key, position) in rows {
        let hk = HoldingKey::of(key);
        if overflowed.contains(&hk) {
            continue;
        }
        match out.get_mut(&hk) {
            None => {
                out.insert(hk, Holding::of(key.trade_date, position));
            }
            Some(h) => {
                if h.add(key.trade_date, position).is_none() {
                    out.remove(&hk);
                    overflowed.push(hk);
                }
            }
        }
    }
    (out, overflowed)
}

#[cfg(test)]
mod tests {
    use rust_decimal::RoundingStrategy;

    use super::*;
    use crate::log_format::parse_line;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn average_rounds_the_exact_quotient_half_even() {
        assert_eq!(average(d("1515.00"), 150), Some(d("10.1")));
        assert_eq!(average(d("4"), 3), Some(d("1.33333333")));
        assert_eq!(average(d("5"), 3), Some(d("1.66666667")));
        // Ties: 0.000000005 → 0.00000000 (even), 0.000000015 → 0.00000002.
        assert_eq!(average(d("0.00000001"), 2), Some(d("0")));
        assert_eq!(average(d("0.00000003"), 2), Some(d("0.00000002")));
        assert_eq!(average(d("1"), 0), None);
        // The row's average (Decimal division, then rounding) agrees on ordinary figures.
        for (n, q) in [("1009.37", 7i64), ("99999.99", 99), ("123.45", 11), ("0.07", 3)] {
            let row = (d(n) / Decimal::from(q)).round_dp_with_strategy(8, RoundingStrategy::MidpointNearestEven);
            assert_eq!(average(d(n), q.into()), Some(row));
        }
    }

    #[test]
    fn holdings_sum_dates_and_price_the_open_side() {
        let row = |date: &str, lines: &[&str]| {
            let trades: Vec<_> = lines
                .iter()
                .map(|l| {
                    parse_line(format!("Activity Time:{date} 09:30:00|Symbol:AAPL|AccountID:CQ01|{l}").as_bytes())
                        .unwrap()
                })
                .collect();
            let mut p = Position::first(&trades[0]).unwrap();
            for t in &trades[1..] {
                p.apply(t).unwrap();
            }
            (SummaryKey::of(&ClientId::parse("7").unwrap(), &trades[0]), p)
        };
        // Day 1: buy 100 @ 10.00. Day 2: buy 50 @ 10.30, sell 120 @ 10.50 (docs/pnl.md).
        let rows = [
            row("2026.11.21", &["Side:B|Price:10.00|Quantity:100"]),
            row("2026.11.22", &["Side:B|Price:10.30|Quantity:50", "Side:S|Price:10.50|Quantity:120"]),
        ];
        let (h, overflowed) = holdings(rows.iter().map(|(k, p)| (k, p)));
        assert!(overflowed.is_empty());
        let aapl = h.values().next().unwrap();
        assert_eq!((aapl.position(), aapl.trade_count), (30, 3));
        assert_eq!(aapl.first_trade_date.to_string(), "2026-11-21");
        assert_eq!(aapl.avg_cost(), Some(d("10.10")));
        assert_eq!(aapl.cost_basis(), Some(d("303.00")));
        assert_eq!(aapl.realized_pnl(), Some(d("48.00")));
        assert_eq!(aapl.total_pnl(d("10.40")), Some(d("57.00")));
    }
}
