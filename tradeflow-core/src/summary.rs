//! The summary (SPEC §3): one row per (trade_date, client_id, account_id, symbol).
//!
//! [`Position`] holds the trading fields, which only trades change; [`Mark`] is the latest market
//! price of the symbol. [`SummaryRow`] is the flat, complete row as users see it.
//! Amounts are exact decimals; average prices are rounded to [`AVG_PRICE_SCALE`] places
//! (banker's rounding) so that every component computes the identical value.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use compact_str::CompactString;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::client::ClientId;
use crate::exact::{checked_exact_add, checked_exact_mul};
use crate::pnl::Book;
use crate::trade::{Side, Trade};

/// Decimal places of `avg_buy_price` / `avg_sell_price`.
pub const AVG_PRICE_SCALE: u32 = 8;
/// A mark older than this is stale (quotes expire after 60 s).
pub const MARK_STALE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// The identity of a summary row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SummaryKey {
    pub trade_date: NaiveDate,
    pub client_id: ClientId,
    pub account_id: CompactString,
    pub symbol: CompactString,
}

impl SummaryKey {
    pub fn of(client_id: &ClientId, trade: &Trade) -> Self {
        Self {
            trade_date: trade.trade_date(),
            client_id: client_id.clone(),
            account_id: trade.account_id.clone(),
            symbol: trade.symbol.clone(),
        }
    }

    /// The Kafka key of this row on `summaries`: `date|client|account|symbol`.
    pub fn kafka_key(&self) -> String {
        format!("{}|{}|{}|{}", self.trade_date, self.client_id, self.account_id, self.symbol)
    }
}

/// Applying a trade would overflow the row's counters, or a notional would need more digits than
/// `rust_decimal` holds (it would round): the trade is refused, the row unchanged. Money is exact
/// (SPEC §3); the edge contract ([`crate::edge`]) keeps one line from ever getting here, the row's
/// sums are guarded by [`crate::exact`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("applying the trade would overflow or lose precision in {field} of the summary row")]
pub struct Overflow {
    pub field: &'static str,
}

/// The trading fields of a row: everything trades determine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub trade_count: i64,
    pub buy_qty: i64,
    pub sell_qty: i64,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    pub last_price: Decimal,
    pub first_trade_at: NaiveDateTime,
    pub last_trade_at: NaiveDateTime,
}

impl Position {
    /// The position after exactly one trade.
    pub fn first(trade: &Trade) -> Result<Self, Overflow> {
        let mut p = Position {
            trade_count: 0,
            buy_qty: 0,
            sell_qty: 0,
            buy_notional: Decimal::ZERO,
            sell_notional: Decimal::ZERO,
            last_price: trade.price,
            first_trade_at: trade.activity_time,
            last_trade_at: trade.activity_time,
        };
        p.apply(trade)?;
        Ok(p)
    }

    /// Adds one trade. On overflow or a notional that would round nothing changes.
    pub fn apply(&mut self, trade: &Trade) -> Result<(), Overflow> {
        let notional =
            checked_exact_mul(trade.price, Decimal::from(trade.quantity)).ok_or(Overflow { field: "notional" })?;
        let trade_count = self.trade_count.checked_add(1).ok_or(Overflow { field: "trade_count" })?;
        let (qty, amount) = match trade.side {
            Side::Buy => (&mut self.buy_qty, &mut self.buy_notional),
            Side::Sell => (&mut self.sell_qty, &mut self.sell_notional),
        };
        let new_qty = qty.checked_add(trade.quantity).ok_or(Overflow { field: "qty" })?;
        let new_amount = checked_exact_add(*amount, notional).ok_or(Overflow { field: "notional" })?;
        *qty = new_qty;
        *amount = new_amount;
        self.trade_count = trade_count;
        if trade.activity_time >= self.last_trade_at {
            self.last_trade_at = trade.activity_time;
            self.last_price = trade.price;
        }
        if trade.activity_time < self.first_trade_at {
            self.first_trade_at = trade.activity_time;
        }
        Ok(())
    }

    /// buy_qty − sell_qty (both are sums of non-negative i64 quantities, so this cannot overflow i128).
    pub fn net_qty(&self) -> i128 {
        self.buy_qty as i128 - self.sell_qty as i128
    }

    pub fn avg_buy_price(&self) -> Option<Decimal> {
        average(self.buy_notional, self.buy_qty)
    }

    pub fn avg_sell_price(&self) -> Option<Decimal> {
        average(self.sell_notional, self.sell_qty)
    }
}

fn average(notional: Decimal, qty: i64) -> Option<Decimal> {
    if qty == 0 {
        return None;
    }
    notional
        .checked_div(Decimal::from(qty))
        .map(|d| d.round_dp_with_strategy(AVG_PRICE_SCALE, RoundingStrategy::MidpointNearestEven))
}

/// The latest market price of a symbol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub price: Decimal,
    pub at: DateTime<Utc>,
}

/// A complete summary row, every SPEC §3 field, flat (CSV- and JSON-friendly).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub trade_date: NaiveDate,
    pub client_id: ClientId,
    pub account_id: CompactString,
    pub symbol: CompactString,
    pub trade_count: i64,
    pub buy_qty: i64,
    pub sell_qty: i64,
    pub net_qty: i128,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    pub avg_buy_price: Option<Decimal>,
    pub avg_sell_price: Option<Decimal>,
    pub last_price: Decimal,
    pub first_trade_at: NaiveDateTime,
    pub last_trade_at: NaiveDateTime,
    pub mark_price: Option<Decimal>,
    pub mark_at: Option<DateTime<Utc>>,
    pub market_value: Option<Decimal>,
    pub mark_stale: Option<bool>,
    /// P&L of the row's book ([`crate::pnl`]): realized (a trading field; `None` only when not
    /// representable), unrealized and total (null without a mark, as `market_value`).
    #[serde(default)]
    pub realized_pnl: Option<Decimal>,
    #[serde(default)]
    pub unrealized_pnl: Option<Decimal>,
    #[serde(default)]
    pub total_pnl: Option<Decimal>,
}

impl SummaryRow {
    /// The row for `key` with `position`, joined with `mark` as seen at `now`.
    pub fn new(key: &SummaryKey, position: &Position, mark: Option<&Mark>, now: DateTime<Utc>) -> Self {
        let net_qty = position.net_qty();
        let pnl = Book::from(position).pnl(mark.map(|m| m.price));
        Self {
            trade_date: key.trade_date,
            client_id: key.client_id.clone(),
            account_id: key.account_id.clone(),
            symbol: key.symbol.clone(),
            trade_count: position.trade_count,
            buy_qty: position.buy_qty,
            sell_qty: position.sell_qty,
            net_qty,
            buy_notional: position.buy_notional,
            sell_notional: position.sell_notional,
            avg_buy_price: position.avg_buy_price(),
            avg_sell_price: position.avg_sell_price(),
            last_price: position.last_price,
            first_trade_at: position.first_trade_at,
            last_trade_at: position.last_trade_at,
            mark_price: mark.map(|m| m.price),
            mark_at: mark.map(|m| m.at),
            market_value: mark.and_then(|m| market_value(net_qty, m.price)),
            mark_stale: mark.map(|m| now.signed_duration_since(m.at) > MARK_STALE_AFTER),
            realized_pnl: pnl.realized,
            unrealized_pnl: pnl.unrealized,
            total_pnl: pnl.total,
        }
    }

    /// This row joined with `mark` instead of its own, as seen at `now` (a price tick moves every
    /// row of its symbol without changing the trading fields).
    pub fn with_mark(&self, mark: Option<&Mark>, now: DateTime<Utc>) -> Self {
        let pnl = Book::from(self).pnl(mark.map(|m| m.price));
        Self {
            mark_price: mark.map(|m| m.price),
            mark_at: mark.map(|m| m.at),
            market_value: mark.and_then(|m| market_value(self.net_qty, m.price)),
            mark_stale: mark.map(|m| now.signed_duration_since(m.at) > MARK_STALE_AFTER),
            realized_pnl: pnl.realized,
            unrealized_pnl: pnl.unrealized,
            total_pnl: pnl.total,
            ..self.clone()
        }
    }

    /// The row's own mark (as the aggregator joined it), if any.
    pub fn mark(&self) -> Option<Mark> {
        Some(Mark { price: self.mark_price?, at: self.mark_at? })
    }

    /// The trading fields only (what must equal the oracle exactly).
    pub fn trading_fields_eq(&self, other: &SummaryRow) -> bool {
        let strip = |r: &SummaryRow| SummaryRow {
            mark_price: None,
            mark_at: None,
            market_value: None,
            mark_stale: None,
            unrealized_pnl: None,
            total_pnl: None,
            ..r.clone()
        };
        strip(self) == strip(other)
    }
}

impl From<&Position> for Book {
    fn from(p: &Position) -> Self {
        Book {
            buy_qty: p.buy_qty,
            sell_qty: p.sell_qty,
            buy_notional: p.buy_notional,
            sell_notional: p.sell_notional,
            avg_buy_price: p.avg_buy_price(),
            avg_sell_price: p.avg_sell_price(),
        }
    }
}

impl From<&SummaryRow> for Book {
    fn from(r: &SummaryRow) -> Self {
        Book {
            buy_qty: r.buy_qty,
            sell_qty: r.sell_qty,
            buy_notional: r.buy_notional,
            sell_notional: r.sell_notional,
            avg_buy_price: r.avg_buy_price,
            avg_sell_price: r.avg_sell_price,
        }
    }
}

fn market_value(net_qty: i128, mark: Decimal) -> Option<Decimal> {
    let qty = i64::try_from(net_qty).ok()?;
    mark.checked_mul(Decimal::from(qty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_format::parse_activity_time;

    fn trade(time: &str, side: Side, price: &str, qty: i64) -> Trade {
        Trade {
            order_no: None,
            activity_time: parse_activity_time(time).unwrap(),
            fill_number: None,
            response_type: None,
            order_id: None,
            symbol: "AAPL".into(),
            side,
            price: price.parse().unwrap(),
            quantity: qty,
            account_id: "CQ01".into(),
            error_code: None,
            timestamp: None,
            exchange_order_id: None,
            child_response_type: None,
            duration: None,
            exch_ts: None,
        }
    }

    #[test]
    fn hand_computed_row() {
        let trades = [
            trade("2026.11.22 09:30:00.2", Side::Buy, "100.10", 10),
            trade("2026.11.22 09:30:00.1", Side::Buy, "100.40", 20),
            trade("2026.11.22 09:30:01.0", Side::Sell, "101.00", 5),
            trade("2026.11.22 09:30:02.0", Side::Sell, "99.99", 0),
        ];
        let mut p = Position::first(&trades[0]).unwrap();
        for t in &trades[1..] {
            p.apply(t).unwrap();
        }
        assert_eq!(p.trade_count, 4);
        assert_eq!((p.buy_qty, p.sell_qty, p.net_qty()), (30, 5, 25));
        assert_eq!(p.buy_notional.to_string(), "3009.00"); // 1001.00 + 2008.00
        assert_eq!(p.sell_notional.to_string(), "505.00");
        assert_eq!(p.avg_buy_price().unwrap().to_string(), "100.30");
        assert_eq!(p.avg_sell_price().unwrap().to_string(), "101.00");
        assert_eq!(p.last_price.to_string(), "99.99");
        assert_eq!(p.first_trade_at, parse_activity_time("2026.11.22 09:30:00.1").unwrap());
        let key = SummaryKey::of(&ClientId::parse("7").unwrap(), &trades[0]);
        assert_eq!(key.kafka_key(), "2026-11-22|7|CQ01|AAPL");
        let now = Utc::now();
        let row = SummaryRow::new(&key, &p, None, now);
        assert_eq!((row.market_value, row.mark_stale), (None, None));
        let mark = Mark { price: "102.5".parse().unwrap(), at: now - chrono::Duration::seconds(61) };
        let row = SummaryRow::new(&key, &p, Some(&mark), now);
        assert_eq!(row.market_value.unwrap().to_string(), "2562.5");
        assert_eq!(row.mark_stale, Some(true));
        // P&L (docs/pnl.md): 5 matched × (101.00 − 100.30); 505 − 3009 + 25 × 102.5.
        assert_eq!(row.realized_pnl.unwrap().to_string(), "3.50");
        assert_eq!(row.total_pnl.unwrap().to_string(), "58.50");
        assert_eq!(row.unrealized_pnl.unwrap().to_string(), "55.00");
        let unmarked = row.with_mark(None, now);
        assert_eq!(
            (unmarked.realized_pnl, unmarked.unrealized_pnl, unmarked.total_pnl),
            (row.realized_pnl, None, None)
        );
    }

    #[test]
    fn average_is_rounded_and_none_without_qty() {
        let mut p = Position::first(&trade("2026.11.22 09:30:00", Side::Buy, "1", 3)).unwrap();
        p.apply(&trade("2026.11.22 09:30:00", Side::Buy, "0", 0)).unwrap();
        p.apply(&trade("2026.11.22 09:30:00", Side::Buy, "2", 0)).unwrap();
        assert_eq!(p.avg_buy_price().unwrap().to_string(), "1");
        let mut q = Position::first(&trade("2026.11.22 09:30:00", Side::Buy, "1", 1)).unwrap();
        q.apply(&trade("2026.11.22 09:30:00", Side::Buy, "1", 2)).unwrap();
        q.apply(&trade("2026.11.22 09:30:00", Side::Buy, "0", 0)).unwrap();
        assert_eq!(q.avg_sell_price(), None);
        let r = Position::first(&trade("2026.11.22 09:30:00", Side::Buy, "1", 3)).unwrap();
        let third = Position { buy_notional: Decimal::ONE, ..r };
        assert_eq!(third.avg_buy_price().unwrap().to_string(), "0.33333333");
    }

    #[test]
    fn overflow_is_an_error_and_changes_nothing() {
        let mut p = Position::first(&trade("2026.11.22 09:30:00", Side::Buy, "1", i64::MAX)).unwrap();
        let before = p.clone();
        assert_eq!(p.apply(&trade("2026.11.22 09:30:01", Side::Buy, "1", 1)), Err(Overflow { field: "qty" }));
        assert_eq!(p, before);
    }

    /// The case 8: rust_decimal alone stored 1000012.2122221122222222112222 (rounded).
    /// The edge contract refuses such a price on a line; the summary refuses it too.
    #[test]
    fn a_notional_or_sum_that_would_round_is_refused_and_changes_nothing() {
        let price = "0.1234567890123456789012345678";
        assert_eq!(
            Position::first(&trade("2026.11.22 09:30:00", Side::Buy, price, 99)),
            Err(Overflow { field: "notional" })
        );
        let mut p = Position::first(&trade("2026.11.22 09:30:00", Side::Buy, price, 1)).unwrap();
        let before = p.clone();
        // 1000000.1134567890123456789012345678 needs more than 96 bits: refused, not rounded.
        assert_eq!(
            p.apply(&trade("2026.11.22 09:30:01", Side::Buy, "999999.99", 1)),
            Err(Overflow { field: "notional" })
        );
        assert_eq!(p, before);
        assert!(Overflow { field: "notional" }.to_string().contains("lose precision"));
    }
}
