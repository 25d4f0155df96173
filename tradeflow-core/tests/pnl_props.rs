//! P&L is order-independent (SPEC §3; docs/pnl.md): any order of the same trades gives the
//! identical row and P&L, for any mark.

use proptest::prelude::*;
use rust_decimal::Decimal;
use tradeflow_core::log_format::parse_line;
use tradeflow_core::pnl::Book;
use tradeflow_core::summary::Position;
use tradeflow_core::{Side, Trade};

fn trade(second: u32, side: Side, price: Decimal, quantity: i64) -> Trade {
    let line = format!(
        "Activity Time:2026.11.22 09:30:{second:02}.0|Symbol:AAPL|Side:{side}|Price:{price}|Quantity:{quantity}|AccountID:CQ01"
    );
    parse_line(line.as_bytes()).unwrap()
}

fn position(trades: &[Trade]) -> Position {
    let mut p = Position::first(&trades[0]).unwrap();
    for t in &trades[1..] {
        p.apply(t).unwrap();
    }
    p
}

fn trades() -> impl Strategy<Value = Vec<Trade>> {
    let one = (0u32..60, prop::bool::ANY, 0i64..100_000, 0i64..100)
        .prop_map(|(s, buy, cents, q)| trade(s, if buy { Side::Buy } else { Side::Sell }, Decimal::new(cents, 2), q));
    prop::collection::vec(one, 1..40)
}

proptest! {
    /// Any order of the same trades gives the identical row and P&L, for any mark.
    #[test]
    fn pnl_is_order_independent(
        (trades, shuffled) in trades().prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
        mark in 0i64..100_000,
    ) {
        let mark = Decimal::new(mark, 2);
        let (a, b) = (position(&trades), position(&shuffled));
        let (pa, pb) = (Book::from(&a).pnl(Some(mark)), Book::from(&b).pnl(Some(mark)));
        prop_assert_eq!(pa, pb);
        prop_assert_eq!(pa.total.unwrap().to_string(), pb.total.unwrap().to_string());
        prop_assert_eq!(pa.realized.unwrap().to_string(), pb.realized.unwrap().to_string());
        // The split adds up, and the total is the cash plus the position at the mark, exactly.
        prop_assert_eq!(pa.realized.unwrap() + pa.unrealized.unwrap(), pa.total.unwrap());
        prop_assert_eq!(pa.total.unwrap(), a.sell_notional - a.buy_notional + Decimal::from(a.net_qty() as i64) * mark);
    }
}
