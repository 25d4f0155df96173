//! The `positions` view: a client's holdings (one per account and symbol, across every trade date
//! the feed holds) computed from its rows with the oracle's code (`tradeflow_core::holdings`,
//! definitions in docs/pnl.md#holdings), valued at the newest mark among the holding's rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::Serialize;
use tradeflow_core::day_pnl::DayBook;
use tradeflow_core::holdings::holdings;
use tradeflow_core::summary::{Mark, Position, SummaryKey, SummaryRow};

use crate::day_open::OpenMarks;

/// (account, symbol): the group a holding is.
pub type HoldingGroup = (CompactString, CompactString);

pub fn group_of(row: &SummaryRow) -> HoldingGroup {
    (row.account_id.clone(), row.symbol.clone())
}

/// One holding as the page and `/api/summary` show it. Quantities are integers (JSON numbers),
/// amounts exact decimals (strings); `None` fields are null.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PositionRow {
    pub account_id: CompactString,
    pub symbol: CompactString,
    pub first_trade_date: NaiveDate,
    pub last_trade_date: NaiveDate,
    pub trade_count: i64,
    pub buy_qty: i128,
    pub sell_qty: i128,
    pub position: i128,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    pub avg_cost: Option<Decimal>,
    pub cost_basis: Option<Decimal>,
    pub realized_pnl: Option<Decimal>,
    pub mark_price: Option<Decimal>,
    pub mark_at: Option<DateTime<Utc>>,
    pub market_value: Option<Decimal>,
    pub unrealized_pnl: Option<Decimal>,
    pub total_pnl: Option<Decimal>,
    /// The day D of `day_pnl` (today UTC live; the as-of date for `as_of`) and its parts
    /// (docs/pnl.md#day-pl): null day P&L without a mark, or without a day-open mark while the
    /// opening position is not 0.
    pub day: NaiveDate,
    pub open_position: i128,
    pub day_open_mark: Option<Decimal>,
    pub day_pnl: Option<Decimal>,
}

/// The holdings of `rows` (one client's), restricted to `only` when given, in (account, symbol)
/// order, with their day P&L on `day` against `open_marks`. A holding whose sums do not fit a
/// decimal is left out (the rows still show it).
pub fn positions<'a>(
    rows: impl IntoIterator<Item = &'a Arc<SummaryRow>>,
    only: Option<&BTreeSet<HoldingGroup>>,
    day: NaiveDate,
    open_marks: &OpenMarks,
) -> Vec<PositionRow> {
    let mut books: Vec<(SummaryKey, Position)> = Vec::new();
    let mut marks: BTreeMap<HoldingGroup, Mark> = BTreeMap::new();
    for row in rows {
        let group = group_of(row);
        if only.is_some_and(|o| !o.contains(&group)) {
            continue;
        }
        if let Some(mark) = row.mark()
            && marks.get(&group).is_none_or(|m| m.at < mark.at)
        {
            marks.insert(group, mark);
        }
        let key = SummaryKey {
            trade_date: row.trade_date,
            client_id: row.client_id.clone(),
            account_id: row.account_id.clone(),
            symbol: row.symbol.clone(),
        };
        let position = Position {
            trade_count: row.trade_count,
            buy_qty: row.buy_qty,
            sell_qty: row.sell_qty,
            buy_notional: row.buy_notional,
            sell_notional: row.sell_notional,
            last_price: row.last_price,
            first_trade_at: row.first_trade_at,
            last_trade_at: row.last_trade_at,
        };
        books.push((key, position));
    }
    let (held, _) = holdings(books.iter().map(|(k, p)| (k, p)));
    held.into_iter()
        .map(|(key, h)| {
            let mark = marks.get(&(key.account_id.clone(), key.symbol.clone()));
            let price = mark.map(|m| m.price);
            let day_rows = books
                .iter()
                .filter(|(k, _)| k.account_id == key.account_id && k.symbol == key.symbol)
                .map(|(k, p)| (k.trade_date, p));
            let book = DayBook::of(day_rows, day);
            let day_open_mark = open_marks.get(&key.symbol, day);
            let realized = h.realized_pnl();
            let total = price.and_then(|m| h.total_pnl(m));
            PositionRow {
                first_trade_date: h.first_trade_date,
                last_trade_date: h.last_trade_date,
                trade_count: h.trade_count,
                buy_qty: h.buy_qty,
                sell_qty: h.sell_qty,
                position: h.position(),
                buy_notional: h.buy_notional,
                sell_notional: h.sell_notional,
                avg_cost: h.avg_cost(),
                cost_basis: h.cost_basis(),
                realized_pnl: realized,
                mark_price: price,
                mark_at: mark.map(|m| m.at),
                market_value: price.and_then(|m| tradeflow_core::pnl::exact::mul_qty(h.position(), m)),
                unrealized_pnl: total.zip(realized).and_then(|(t, r)| tradeflow_core::pnl::exact::sub(t, r)),
                total_pnl: total,
                day,
                open_position: book.as_ref().map_or(0, |b| b.open_position),
                day_open_mark,
                day_pnl: book.and_then(|b| b.day_pnl(price, day_open_mark)),
                account_id: key.account_id,
                symbol: key.symbol,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tradeflow_core::ClientId;

    use super::*;

    fn row(date: &str, bq: i64, bn: &str, sq: i64, sn: &str, mark: Option<(&str, i64)>) -> Arc<SummaryRow> {
        let at = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap().and_hms_opt(9, 30, 0).unwrap();
        let key = SummaryKey {
            trade_date: at.date(),
            client_id: ClientId::parse("7").unwrap(),
            account_id: "CQ01".into(),
            symbol: "AAPL".into(),
        };
        let p = Position {
            trade_count: 1,
            buy_qty: bq,
            sell_qty: sq,
            buy_notional: bn.parse().unwrap(),
            sell_notional: sn.parse().unwrap(),
            last_price: Decimal::ONE,
            first_trade_at: at,
            last_trade_at: at,
        };
        let mark =
            mark.map(|(m, secs)| Mark { price: m.parse().unwrap(), at: DateTime::from_timestamp(secs, 0).unwrap() });
        Arc::new(SummaryRow::new(&key, &p, mark.as_ref(), Utc::now()))
    }

    #[test]
    fn the_worked_example_across_two_dates_at_the_newest_mark() {
        let rows = [
            row("2026-11-21", 100, "1000.00", 0, "0", Some(("10.20", 100))),
            row("2026-11-22", 50, "515.00", 120, "1260.00", Some(("10.40", 200))),
        ];
        let d22 = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let open = OpenMarks { day: Some(d22), marks: [("AAPL".into(), "10.20".parse().unwrap())].into() };
        let p = positions(rows.iter(), None, d22, &open);
        assert_eq!(p.len(), 1);
        let h = &p[0];
        assert_eq!((h.position, h.trade_count, h.first_trade_date.to_string()), (30, 2, "2026-11-21".to_owned()));
        let d = |s: &str| Some(s.parse::<Decimal>().unwrap());
        assert_eq!((h.avg_cost, h.cost_basis, h.realized_pnl), (d("10.10"), d("303.00"), d("48.00")));
        assert_eq!((h.mark_price, h.market_value), (d("10.40"), d("312.00")));
        assert_eq!((h.total_pnl, h.unrealized_pnl), (d("57.00"), d("9.00")));
        assert_eq!((h.open_position, h.day_open_mark, h.day_pnl), (100, d("10.20"), d("37.00")), "docs/pnl.md#day-pl");
        let other: BTreeSet<HoldingGroup> = [("CQ02".into(), "AAPL".into())].into();
        assert!(positions(rows.iter(), Some(&other), d22, &open).is_empty());
    }
}
