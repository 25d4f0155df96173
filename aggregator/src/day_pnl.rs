//! Day P&L in Postgres (the view `holdings`: `day`, `day_open_mark`, `day_pnl`) against the
//! oracle's (`tradeflow_core::day_pnl` over the oracle's rows, valued at the stored marks and the
//! day-open mark the core rule takes from the stored `price_bars`). Part of `tradeflow verify`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgPool, Row as _};
use tradeflow_core::ClientId;
use tradeflow_core::bars::Bar;
use tradeflow_core::day_pnl::{DayBook, day_open_mark};
use tradeflow_core::holdings::HoldingKey;
use tradeflow_core::oracle::Oracle;

use crate::store::StoreError;

/// A holding's day P&L figures as stored or expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayPnl {
    pub day: NaiveDate,
    pub mark_price: Option<Decimal>,
    pub day_open_mark: Option<Decimal>,
    pub day_pnl: Option<Decimal>,
}

/// Every holding's day P&L figures from the view `holdings`.
pub async fn current_day_pnl(pool: &PgPool) -> Result<BTreeMap<HoldingKey, DayPnl>, StoreError> {
    let rows =
        sqlx::query("SELECT client_id, account_id, symbol, day, mark_price, day_open_mark, day_pnl FROM holdings")
            .fetch_all(pool)
            .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let client: String = r.try_get("client_id")?;
        let client_id = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let key = HoldingKey {
            client_id,
            account_id: r.try_get::<String, _>("account_id")?.into(),
            symbol: r.try_get::<String, _>("symbol")?.into(),
        };
        let value = DayPnl {
            day: r.try_get("day")?,
            mark_price: r.try_get("mark_price")?,
            day_open_mark: r.try_get("day_open_mark")?,
            day_pnl: r.try_get("day_pnl")?,
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// The bars of `symbol` that decide its day-open mark on `day`: the latest before the day, the
/// day's first.
async fn open_bars(pool: &PgPool, symbol: &str, day: NaiveDate) -> Result<Vec<Bar>, StoreError> {
    let rows = sqlx::query(
        "(SELECT minute, open, high, low, close, ticks, open_at, close_at FROM price_bars
          WHERE symbol = $1 AND trade_date < $2 ORDER BY minute DESC LIMIT 1)
         UNION ALL
         (SELECT minute, open, high, low, close, ticks, open_at, close_at FROM price_bars
          WHERE symbol = $1 AND trade_date = $2 ORDER BY minute LIMIT 1)",
    )
    .bind(symbol)
    .bind(day)
    .fetch_all(pool)
    .await?;
    let mut bars = Vec::with_capacity(rows.len());
    for r in rows {
        bars.push(Bar {
            symbol: symbol.into(),
            minute: r.try_get::<DateTime<Utc>, _>("minute")?,
            open: r.try_get("open")?,
            high: r.try_get("high")?,
            low: r.try_get("low")?,
            close: r.try_get("close")?,
            ticks: r.try_get("ticks")?,
            open_at: r.try_get("open_at")?,
            close_at: r.try_get("close_at")?,
        });
    }
    Ok(bars)
}

/// The differences (one line each) between the stored day P&L and the oracle's, valued at the
/// stored marks: empty when equal. Holdings missing on either side are `compare_holdings`' to report.
pub async fn compare_day_pnl(
    pool: &PgPool,
    stored: &BTreeMap<HoldingKey, DayPnl>,
    oracle: &Oracle,
) -> Result<Vec<String>, StoreError> {
    let mut open_marks: BTreeMap<(String, NaiveDate), Option<Decimal>> = BTreeMap::new();
    let mut diffs = Vec::new();
    for (key, s) in stored {
        let open = match open_marks.get(&(key.symbol.to_string(), s.day)) {
            Some(open) => *open,
            None => {
                let open = day_open_mark(&open_bars(pool, &key.symbol, s.day).await?, s.day);
                open_marks.insert((key.symbol.to_string(), s.day), open);
                open
            }
        };
        let rows = oracle.rows.iter().filter(|(k, _)| HoldingKey::of(k) == *key).map(|(k, p)| (k.trade_date, p));
        let Some(book) = DayBook::of(rows, s.day) else {
            diffs.push(format!("unrepresentable day P&L {}|{}|{}", key.client_id, key.account_id, key.symbol));
            continue;
        };
        let expected = DayPnl { day_open_mark: open, day_pnl: book.day_pnl(s.mark_price, open), ..s.clone() };
        if *s != expected {
            diffs.push(format!(
                "day P&L differs {}|{}|{}\n  stored:   {s:?}\n  expected: {expected:?}",
                key.client_id, key.account_id, key.symbol
            ));
        }
    }
    Ok(diffs)
}
