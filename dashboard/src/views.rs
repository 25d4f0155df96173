//! Analytic views over a client's rows: totals by symbol or by account (per trade date).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use compact_str::CompactString;
use rust_decimal::Decimal;
use tradeflow_core::summary::SummaryRow;

use crate::protocol::{Total, View};

pub type GroupKey = (NaiveDate, CompactString);

pub fn group_of(view: View, row: &SummaryRow) -> GroupKey {
    match view {
        View::TotalsByAccount => (row.trade_date, row.account_id.clone()),
        _ => (row.trade_date, row.symbol.clone()),
    }
}

/// Totals of `rows` per group, restricted to `only` when given. Sums saturate rather than fail:
/// these are display figures; the exact per-row figures are in the rows.
pub fn totals<'a>(
    view: View,
    rows: impl IntoIterator<Item = &'a Arc<SummaryRow>>,
    only: Option<&BTreeSet<GroupKey>>,
) -> Vec<Total> {
    let mut out: BTreeMap<GroupKey, Total> = BTreeMap::new();
    for row in rows {
        let key = group_of(view, row);
        if only.is_some_and(|o| !o.contains(&key)) {
            continue;
        }
        let t = out.entry(key.clone()).or_insert_with(|| Total {
            trade_date: key.0,
            group: key.1.clone(),
            rows: 0,
            trade_count: 0,
            buy_qty: 0,
            sell_qty: 0,
            net_qty: 0,
            buy_notional: Decimal::ZERO,
            sell_notional: Decimal::ZERO,
            market_value: Decimal::ZERO,
            unmarked_rows: 0,
            realized_pnl: Decimal::ZERO,
            unrealized_pnl: Decimal::ZERO,
            total_pnl: Decimal::ZERO,
        });
        t.rows += 1;
        t.trade_count = t.trade_count.saturating_add(row.trade_count);
        t.buy_qty = t.buy_qty.saturating_add(row.buy_qty);
        t.sell_qty = t.sell_qty.saturating_add(row.sell_qty);
        t.net_qty = t.net_qty.saturating_add(row.net_qty);
        t.buy_notional = t.buy_notional.saturating_add(row.buy_notional);
        t.sell_notional = t.sell_notional.saturating_add(row.sell_notional);
        match row.market_value {
            Some(v) => t.market_value = t.market_value.saturating_add(v),
            None => t.unmarked_rows += 1,
        }
        let add = |sum: &mut Decimal, v: Option<Decimal>| *sum = sum.saturating_add(v.unwrap_or_default());
        add(&mut t.realized_pnl, row.realized_pnl);
        add(&mut t.unrealized_pnl, row.unrealized_pnl);
        add(&mut t.total_pnl, row.total_pnl);
    }
    out.into_values().collect()
}
