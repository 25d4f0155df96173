//! Day P&L of a holding (docs/pnl.md#day-pl): what the holding made on trade date D, against the
//! day-open mark — the opening position revalued, plus D's trades at the mark.
//!
//! - **Day-open mark** of symbol S on D ([`day_open_mark`]): the close of S's latest minute bar
//!   before D's start (the previous close), else the open of D's first bar; `None` when neither.
//! - **Day P&L** ([`DayBook::day_pnl`]) = open_pos × (mark − day_open_mark) + D's sell_notional −
//!   D's buy_notional + D's net_qty × mark, where open_pos is the position from the rows dated
//!   before D. `None` without a mark, or without a day-open mark while open_pos ≠ 0, or when a
//!   figure is not representable (exact ops: nothing is rounded).
//!
//! D is a date compared with the rows' `trade_date` (SPEC §3: the date of `activity_time`) and
//! with the bars' UTC dates; the view `holdings` takes D = today (UTC), `holdings_as_of(t)` the UTC
//! date of t. Rows dated after D do not count for D's P&L.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::bars::Bar;
use crate::exact::{checked_exact_add as add, checked_exact_mul_qty as mul_qty, checked_exact_sub as sub};
use crate::summary::Position;

/// The day-open mark of D from `bars` of one symbol (any order; only the latest bar before D and
/// D's first bar matter).
pub fn day_open_mark<'a>(bars: impl IntoIterator<Item = &'a Bar>, day: NaiveDate) -> Option<Decimal> {
    let mut previous: Option<&Bar> = None;
    let mut first: Option<&Bar> = None;
    for bar in bars {
        let date = bar.trade_date();
        if date < day && previous.is_none_or(|p| p.minute < bar.minute) {
            previous = Some(bar);
        }
        if date == day && first.is_none_or(|f| f.minute > bar.minute) {
            first = Some(bar);
        }
    }
    previous.map(|b| b.close).or(first.map(|b| b.open))
}

/// The parts of a holding's rows that its day P&L on D needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayBook {
    /// Σ (buy_qty − sell_qty) of the rows dated before D.
    pub open_position: i128,
    /// D's row.
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    pub net_qty: i128,
}

impl DayBook {
    /// From one holding's rows (date, position); `None` if a sum is not representable.
    pub fn of<'a>(rows: impl IntoIterator<Item = (NaiveDate, &'a Position)>, day: NaiveDate) -> Option<Self> {
        let mut book = DayBook::default();
        for (date, p) in rows {
            let net = i128::from(p.buy_qty) - i128::from(p.sell_qty);
            if date < day {
                book.open_position += net;
            } else if date == day {
                book.buy_notional = add(book.buy_notional, p.buy_notional)?;
                book.sell_notional = add(book.sell_notional, p.sell_notional)?;
                book.net_qty += net;
            }
        }
        Some(book)
    }

    /// open_pos × (mark − open_mark) + sell_notional − buy_notional + net_qty × mark.
    pub fn day_pnl(&self, mark: Option<Decimal>, open_mark: Option<Decimal>) -> Option<Decimal> {
        let mark = mark?;
        let opening = match (self.open_position, open_mark) {
            (0, _) => Decimal::ZERO,
            (pos, Some(open)) => mul_qty(pos, sub(mark, open)?)?,
            (_, None) => return None,
        };
        let trades = add(sub(self.sell_notional, self.buy_notional)?, mul_qty(self.net_qty, mark)?)?;
        add(opening, trades)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn bar(minute: &str, open: &str, close: &str) -> Bar {
        let minute: DateTime<Utc> = minute.parse().unwrap();
        let (open, close) = (open.parse().unwrap(), close.parse().unwrap());
        Bar {
            symbol: "AAPL".into(),
            minute,
            open,
            high: open,
            low: close,
            close,
            ticks: 1,
            open_at: minute,
            close_at: minute,
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_day_open_mark_is_the_previous_close_else_the_first_open() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let bars = [
            bar("2026-11-22T09:31:00Z", "10.35", "10.36"),
            bar("2026-11-21T15:59:00Z", "10.25", "10.30"),
            bar("2026-11-21T10:00:00Z", "10.00", "10.10"),
            bar("2026-11-22T09:30:00Z", "10.32", "10.33"),
            bar("2026-11-23T09:30:00Z", "11", "11"),
        ];
        assert_eq!(day_open_mark(&bars, day), Some(d("10.30")), "the previous close");
        assert_eq!(day_open_mark(&bars[..1], day), Some(d("10.35")));
        assert_eq!(day_open_mark(&[bars[0].clone(), bars[3].clone()], day), Some(d("10.32")), "D's first open");
        assert_eq!(day_open_mark(&bars[4..], day), None);
    }

    #[test]
    fn the_worked_example_day_pnl() {
        // docs/pnl.md: 2026-11-21 buy 100 @ 10.00; 2026-11-22 buy 50 @ 10.30, sell 120 @ 10.50.
        let at = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap().and_hms_opt(9, 30, 0).unwrap();
        let p = |bq: i64, bn: &str, sq: i64, sn: &str| Position {
            trade_count: 1,
            buy_qty: bq,
            sell_qty: sq,
            buy_notional: d(bn),
            sell_notional: d(sn),
            last_price: Decimal::ONE,
            first_trade_at: at,
            last_trade_at: at,
        };
        let (d21, d22) = (at.date(), at.date().succ_opt().unwrap());
        let rows = [(d21, p(100, "1000.00", 0, "0")), (d22, p(50, "515.00", 120, "1260.00"))];
        let book = DayBook::of(rows.iter().map(|(d, p)| (*d, p)), d22).unwrap();
        assert_eq!((book.open_position, book.net_qty), (100, -70));
        // 100 × (10.40 − 10.20) + 1260 − 515 − 70 × 10.40 = 20 + 745 − 728 = 37.
        assert_eq!(book.day_pnl(Some(d("10.40")), Some(d("10.20"))), Some(d("37.00")));
        assert_eq!(book.day_pnl(None, Some(d("10.20"))), None, "no mark");
        assert_eq!(book.day_pnl(Some(d("10.40")), None), None, "an opening position without a day-open mark");
        let first_day = DayBook::of(rows.iter().map(|(d, p)| (*d, p)), d21).unwrap();
        assert_eq!(first_day.day_pnl(Some(d("10.20")), None), Some(d("20.00")), "flat at the open: D's trades only");
    }
}
