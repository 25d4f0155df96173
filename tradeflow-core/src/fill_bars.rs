//! Fill bars (issue #24): per (trade_date, client, account, symbol, minute) the fills of that UTC
//! minute — trade count, quantity and notional by side, and their VWAP. The raw material of the
//! page's charts; kept beside the summary row they belong to, so they are exactly as exact (and
//! exactly-once) as the row.
//!
//! A row's bars are a [`RowBars`]: minute → [`FillBar`]. A trade counts in a bar only if it also
//! counts in its row, and the other way round ([`next_bar`] is checked before the row is changed):
//! the bars of a row always sum to the row.

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, Timelike};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::exact::{checked_exact_add, checked_exact_mul};
use crate::summary::{AVG_PRICE_SCALE, Overflow};
use crate::trade::{Side, Trade};

/// Decimal places of [`FillBar::vwap`] (8, half-even: the same rounding as the average prices and
/// `tradeflow_average()` in the migrations).
pub const VWAP_SCALE: u32 = AVG_PRICE_SCALE;

/// The fills of one minute of one summary row. Quantities are sums of `Quantity` (shares),
/// notionals exact sums of price × quantity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillBar {
    pub trade_count: i64,
    pub buy_qty: i64,
    pub sell_qty: i64,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
}

/// A row's bars, by the start of the minute (UTC, as `activity_time` is).
pub type RowBars = BTreeMap<NaiveDateTime, FillBar>;

/// The start of the UTC minute `t` falls in.
pub fn minute_of(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t)
}

impl FillBar {
    /// This bar with `trade` added, or the field that would overflow (or round) — nothing changes.
    pub fn with(&self, trade: &Trade) -> Result<FillBar, Overflow> {
        let notional =
            checked_exact_mul(trade.price, Decimal::from(trade.quantity)).ok_or(Overflow { field: "notional" })?;
        let mut bar = self.clone();
        bar.trade_count = bar.trade_count.checked_add(1).ok_or(Overflow { field: "trade_count" })?;
        let (qty, amount) = match trade.side {
            Side::Buy => (&mut bar.buy_qty, &mut bar.buy_notional),
            Side::Sell => (&mut bar.sell_qty, &mut bar.sell_notional),
        };
        *qty = qty.checked_add(trade.quantity).ok_or(Overflow { field: "qty" })?;
        *amount = checked_exact_add(*amount, notional).ok_or(Overflow { field: "notional" })?;
        Ok(bar)
    }

    /// (buy_notional + sell_notional) ÷ (buy_qty + sell_qty), 8 places half-even; `None` without
    /// quantity (or with a negative notional, as `tradeflow_average()`).
    pub fn vwap(&self) -> Option<Decimal> {
        let qty = i128::from(self.buy_qty) + i128::from(self.sell_qty);
        let notional = checked_exact_add(self.buy_notional, self.sell_notional)?;
        if qty <= 0 || notional.is_sign_negative() {
            return None;
        }
        notional
            .checked_div(Decimal::from_i128_with_scale(qty, 0))
            .map(|d| d.round_dp_with_strategy(VWAP_SCALE, RoundingStrategy::MidpointNearestEven))
    }
}

/// The bar `trade` lands in (its minute) with the trade added, as it would be in `bars`; the
/// caller stores it once the row has taken the trade too.
pub fn next_bar(bars: &RowBars, trade: &Trade) -> Result<(NaiveDateTime, FillBar), Overflow> {
    let minute = minute_of(trade.activity_time);
    let bar = bars.get(&minute).map_or_else(|| FillBar::default().with(trade), |b| b.with(trade))?;
    Ok((minute, bar))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_format::parse_line;

    fn trade(time: &str, side: &str, price: &str, qty: i64) -> Trade {
        let line = format!("Activity Time:{time}|Symbol:AAPL|Side:{side}|Price:{price}|Quantity:{qty}|AccountID:CQ01");
        parse_line(line.as_bytes()).unwrap()
    }

    #[test]
    fn fills_of_one_minute_sum_by_side_with_a_half_even_vwap() {
        let mut bars = RowBars::new();
        for t in [
            trade("2026.11.22 09:30:00.1", "B", "10.5", 2),
            trade("2026.11.22 09:30:59.999", "S", "11", 1),
            trade("2026.11.22 09:31:00.0", "B", "1", 3),
        ] {
            let (minute, bar) = next_bar(&bars, &t).unwrap();
            bars.insert(minute, bar);
        }
        assert_eq!(bars.len(), 2);
        let first = &bars[&minute_of(trade("2026.11.22 09:30:17", "B", "1", 1).activity_time)];
        assert_eq!((first.trade_count, first.buy_qty, first.sell_qty), (2, 2, 1));
        assert_eq!((first.buy_notional.to_string(), first.sell_notional.to_string()), ("21.0".into(), "11".into()));
        // 32 / 3 = 10.666… → 10.66666667
        assert_eq!(first.vwap().unwrap().to_string(), "10.66666667");
        assert_eq!(FillBar::default().vwap(), None);
        // Half-even at the 8th place: 0.000000025 → 0.00000002.
        let half =
            FillBar { trade_count: 1, buy_qty: 2, buy_notional: "0.00000005".parse().unwrap(), ..Default::default() };
        assert_eq!(half.vwap().unwrap().to_string(), "0.00000002");
    }

    #[test]
    fn an_overflowing_fill_changes_nothing() {
        let bar = FillBar { trade_count: 1, buy_qty: i64::MAX, ..Default::default() };
        assert_eq!(bar.with(&trade("2026.11.22 09:30:00", "B", "1", 1)), Err(Overflow { field: "qty" }));
        assert_eq!(bar.buy_qty, i64::MAX);
    }
}
