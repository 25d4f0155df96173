//! Holdings in Postgres (the view `holdings`, derived from `summary_current`) against the oracle's
//! (`tradeflow_core::holdings`): the trading fields, exactly. Part of `tradeflow verify`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgPool;
use tradeflow_core::ClientId;
use tradeflow_core::holdings::{HoldingKey, holdings};
use tradeflow_core::oracle::Oracle;

use crate::store::StoreError;

/// A holding's trading fields as compared: dates, counts, sums, averages, cost and realized P&L.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldingFields {
    pub first_trade_date: NaiveDate,
    pub last_trade_date: NaiveDate,
    pub trade_count: i64,
    pub buy_qty: Decimal,
    pub sell_qty: Decimal,
    pub position: Decimal,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    pub avg_cost: Option<Decimal>,
    pub cost_basis: Option<Decimal>,
    pub realized_pnl: Option<Decimal>,
}

/// One difference between the view and the oracle.
#[derive(Clone, Debug, PartialEq)]
pub enum HoldingDifference {
    Missing(HoldingKey),
    Unexpected(HoldingKey),
    Differs {
        key: HoldingKey,
        stored: Box<HoldingFields>,
        expected: Box<HoldingFields>,
    },
    /// The oracle cannot sum this holding (a figure beyond 28 digits): not comparable.
    Unrepresentable(HoldingKey),
}

impl std::fmt::Display for HoldingDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |k: &HoldingKey| format!("holding {}|{}|{}", k.client_id, k.account_id, k.symbol);
        match self {
            HoldingDifference::Missing(k) => write!(f, "missing   {}", name(k)),
            HoldingDifference::Unexpected(k) => write!(f, "unexpected {}", name(k)),
            HoldingDifference::Differs { key, stored, expected } => {
                write!(f, "differs   {}\n  stored:   {stored:?}\n  expected: {expected:?}", name(key))
            }
            HoldingDifference::Unrepresentable(k) => write!(f, "unrepresentable {}", name(k)),
        }
    }
}

/// Every row of the view `holdings`.
pub async fn current_holdings(pool: &PgPool) -> Result<BTreeMap<HoldingKey, HoldingFields>, StoreError> {
    type Row = (
        String,
        String,
        String,
        NaiveDate,
        NaiveDate,
        i64,
        Decimal,
        Decimal,
        Decimal,
        Decimal,
        Decimal,
        Option<Decimal>,
        Option<Decimal>,
        Option<Decimal>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT client_id, account_id, symbol, first_trade_date, last_trade_date, trade_count, buy_qty, sell_qty,
                position, buy_notional, sell_notional, avg_cost, cost_basis, realized_pnl FROM holdings",
    )
    .fetch_all(pool)
    .await?;
    let mut out = BTreeMap::new();
    for (client, account, symbol, first, last, count, bq, sq, pos, bn, sn, avg, cost, realized) in rows {
        let client_id = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        out.insert(
            HoldingKey { client_id, account_id: account.into(), symbol: symbol.into() },
            HoldingFields {
                first_trade_date: first,
                last_trade_date: last,
                trade_count: count,
                buy_qty: bq,
                sell_qty: sq,
                position: pos,
                buy_notional: bn,
                sell_notional: sn,
                avg_cost: avg,
                cost_basis: cost,
                realized_pnl: realized,
            },
        );
    }
    Ok(out)
}

/// The oracle's holdings, as compared.
pub fn expected_holdings(oracle: &Oracle) -> (BTreeMap<HoldingKey, HoldingFields>, Vec<HoldingKey>) {
    let (held, overflowed) = holdings(oracle.rows.iter());
    let fields = held
        .into_iter()
        .map(|(k, h)| {
            let f = HoldingFields {
                first_trade_date: h.first_trade_date,
                last_trade_date: h.last_trade_date,
                trade_count: h.trade_count,
                buy_qty: Decimal::from_i128_with_scale(h.buy_qty, 0),
                sell_qty: Decimal::from_i128_with_scale(h.sell_qty, 0),
                position: Decimal::from_i128_with_scale(h.position(), 0),
                buy_notional: h.buy_notional,
                sell_notional: h.sell_notional,
                avg_cost: h.avg_cost(),
                cost_basis: h.cost_basis(),
                realized_pnl: h.realized_pnl(),
            };
            (k, f)
        })
        .collect();
    (fields, overflowed)
}

/// The differences between the view and the oracle's holdings (empty: equal). Decimal equality
/// ignores scale (10.1 == 10.10000000), as NUMERIC does.
pub fn compare_holdings(stored: &BTreeMap<HoldingKey, HoldingFields>, oracle: &Oracle) -> Vec<HoldingDifference> {
    let (expected, overflowed) = expected_holdings(oracle);
    let mut diffs: Vec<HoldingDifference> = overflowed.into_iter().map(HoldingDifference::Unrepresentable).collect();
    for (key, e) in &expected {
        match stored.get(key) {
            None => diffs.push(HoldingDifference::Missing(key.clone())),
            Some(s) if s != e => diffs.push(HoldingDifference::Differs {
                key: key.clone(),
                stored: Box::new(s.clone()),
                expected: Box::new(e.clone()),
            }),
            Some(_) => {}
        }
    }
    for key in stored.keys() {
        if !expected.contains_key(key) && !diffs.contains(&HoldingDifference::Unrepresentable(key.clone())) {
            diffs.push(HoldingDifference::Unexpected(key.clone()));
        }
    }
    diffs
}
