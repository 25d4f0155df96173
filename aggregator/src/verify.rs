//! `tradeflow verify --logs DIR`: the current rows in Postgres against the oracle of the log
//! files, trading fields only (the mark fields depend on prices, not on trades): the position and
//! the realized P&L (`docs/pnl.md`), compared exactly.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgPool;
use tradeflow_core::ClientId;
use tradeflow_core::oracle::Oracle;
use tradeflow_core::pnl::Book;
use tradeflow_core::summary::{Position, SummaryKey};

use crate::store::{StoreError, from_nanos};

/// One difference between Postgres and the oracle.
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    Missing(SummaryKey),
    Unexpected(SummaryKey),
    Differs {
        key: SummaryKey,
        stored: Box<Position>,
        expected: Box<Position>,
    },
    /// The stored `realized_pnl` is not the one the oracle's position gives.
    RealizedPnl {
        key: SummaryKey,
        stored: Option<Decimal>,
        expected: Option<Decimal>,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing(k) => write!(f, "missing   {}", k.kafka_key()),
            Difference::Unexpected(k) => write!(f, "unexpected {}", k.kafka_key()),
            Difference::Differs { key, stored, expected } => {
                write!(f, "differs   {}\n  stored:   {stored:?}\n  expected: {expected:?}", key.kafka_key())
            }
            Difference::RealizedPnl { key, stored, expected } => {
                write!(f, "differs   {} realized_pnl: stored {stored:?}, expected {expected:?}", key.kafka_key())
            }
        }
    }
}

pub async fn current_rows(pool: &PgPool) -> Result<BTreeMap<SummaryKey, Position>, StoreError> {
    type Row = (NaiveDate, String, String, String, i64, i64, i64, Decimal, Decimal, Decimal, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT trade_date, client_id, account_id, symbol, trade_count, buy_qty, sell_qty, buy_notional,
                sell_notional, last_price, first_trade_at_ns, last_trade_at_ns FROM summary_current",
    )
    .fetch_all(pool)
    .await?;
    let mut out = BTreeMap::new();
    for (date, client, account, symbol, count, bq, sq, bn, sn, last, first_ns, last_ns) in rows {
        let client_id = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        out.insert(
            SummaryKey { trade_date: date, client_id, account_id: account.into(), symbol: symbol.into() },
            Position {
                trade_count: count,
                buy_qty: bq,
                sell_qty: sq,
                buy_notional: bn,
                sell_notional: sn,
                last_price: last,
                first_trade_at: from_nanos(first_ns),
                last_trade_at: from_nanos(last_ns),
            },
        );
    }
    Ok(out)
}

/// Every current row's stored `realized_pnl`.
pub async fn current_realized_pnl(pool: &PgPool) -> Result<BTreeMap<SummaryKey, Option<Decimal>>, StoreError> {
    type Row = (NaiveDate, String, String, String, Option<Decimal>);
    let rows: Vec<Row> =
        sqlx::query_as("SELECT trade_date, client_id, account_id, symbol, realized_pnl FROM summary_current")
            .fetch_all(pool)
            .await?;
    let mut out = BTreeMap::new();
    for (date, client, account, symbol, realized) in rows {
        let client_id = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        out.insert(
            SummaryKey { trade_date: date, client_id, account_id: account.into(), symbol: symbol.into() },
            realized,
        );
    }
    Ok(out)
}

/// The rows whose stored realized P&L differs from the oracle's (rows missing on either side are
/// [`compare`]'s). Decimal equality ignores scale (48.00 == 48), as NUMERIC does.
pub fn compare_realized_pnl(stored: &BTreeMap<SummaryKey, Option<Decimal>>, oracle: &Oracle) -> Vec<Difference> {
    let mut diffs = Vec::new();
    for (key, position) in &oracle.rows {
        let expected = Book::from(position).realized();
        if let Some(&stored) = stored.get(key)
            && stored != expected
        {
            diffs.push(Difference::RealizedPnl { key: key.clone(), stored, expected });
        }
    }
    diffs
}

/// The differences between the stored rows and `oracle` (empty: equal).
pub fn compare(stored: &BTreeMap<SummaryKey, Position>, oracle: &Oracle) -> Vec<Difference> {
    let mut diffs = Vec::new();
    for (key, expected) in &oracle.rows {
        match stored.get(key) {
            None => diffs.push(Difference::Missing(key.clone())),
            // Decimal equality ignores scale (2.50 == 2.5), as NUMERIC does.
            Some(s) if s != expected => diffs.push(Difference::Differs {
                key: key.clone(),
                stored: Box::new(s.clone()),
                expected: Box::new(expected.clone()),
            }),
            Some(_) => {}
        }
    }
    for key in stored.keys() {
        if !oracle.rows.contains_key(key) {
            diffs.push(Difference::Unexpected(key.clone()));
        }
    }
    diffs
}
