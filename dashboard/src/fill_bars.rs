//! `GET /api/fill-bars?client=7[&date=YYYY-MM-DD][&account=…][&symbol=…]`: one client's fill bars
//! of one trade date (default today, UTC) from Postgres (`fill_bar_rows`: `fill_bars` with the
//! VWAP) — per (account, symbol, UTC minute) the trade count, quantity and notional by side and
//! the VWAP (8 places half-even, null without quantity). Token rules, rate limit and errors as
//! `/api/summary`; at most [`MAX_FILL_BARS`] bars (more: 400, narrow with `account`/`symbol`).
//! The contract: docs/protocol.md#fill-bars.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tradeflow_core::ClientId;

/// The most bars one answer holds: a week of minutes (as `/api/bars`).
pub const MAX_FILL_BARS: usize = 10_080;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillBarsQuery {
    pub client: String,
    pub date: Option<String>,
    pub account: Option<String>,
    pub symbol: Option<String>,
    pub token: Option<String>,
}

/// The answer: `{"client":"7","trade_date":"2026-11-30","bars":[…]}`, bars ascending by
/// (account, symbol, minute).
#[derive(Debug, Serialize)]
pub struct FillBarsAnswer {
    pub client: String,
    pub trade_date: NaiveDate,
    pub bars: Vec<FillBarRow>,
}

/// One bar: quantities (shares) and amounts as decimal strings, `minute` the start of the UTC
/// minute (RFC 3339, `Z`).
#[derive(Debug, Serialize)]
pub struct FillBarRow {
    pub account_id: String,
    pub symbol: String,
    pub minute: DateTime<Utc>,
    pub trade_count: i64,
    pub buy_qty: String,
    pub sell_qty: String,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    pub vwap: Option<Decimal>,
}

#[derive(Debug, thiserror::Error)]
pub enum FillBarsError {
    #[error("date must be a trade date such as 2026-11-30: {0}")]
    BadDate(chrono::ParseError),
    #[error("date must be a trade date written YYYY-MM-DD, such as 2026-11-30: {0:?}")]
    DateShape(String),
    #[error("{0}")]
    BadKey(tradeflow_core::log_format::ParseError),
    #[error("more than {MAX_FILL_BARS} fill bars: narrow the query with account= or symbol=")]
    TooMany,
    #[error("fill bars need the snapshot database (start the dashboard with --database-url)")]
    NoDatabase,
    #[error("reading fill_bars failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// The trade date asked for (`None`: today, UTC).
pub fn trade_date(date: Option<&str>) -> Result<NaiveDate, FillBarsError> {
    match date {
        None => Ok(Utc::now().date_naive()),
        // chrono's %Y takes any number of digits ("26-11-30" is year 26): the shape first.
        Some(d) if !is_iso_date_shape(d) => Err(FillBarsError::DateShape(d.chars().take(40).collect())),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(FillBarsError::BadDate),
    }
}

fn is_iso_date_shape(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// An `account` or `symbol` filter: a key a trade could have (docs/edge.md), else 400.
pub fn check_filter(account: Option<&str>, symbol: Option<&str>) -> Result<(), FillBarsError> {
    for (field, value) in [("account", account), ("symbol", symbol)] {
        if let Some(v) = value {
            tradeflow_core::edge::check_outside_key(field, v).map_err(FillBarsError::BadKey)?;
        }
    }
    Ok(())
}

type Row = (String, String, DateTime<Utc>, i64, i64, i64, Decimal, Decimal, Option<Decimal>);

/// The bars of `client` on `date`, filtered by account and symbol.
pub async fn fill_bars(
    db: Option<&Arc<PgPool>>,
    client: &ClientId,
    date: NaiveDate,
    account: Option<&str>,
    symbol: Option<&str>,
) -> Result<FillBarsAnswer, FillBarsError> {
    let db = db.ok_or(FillBarsError::NoDatabase)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT account_id, symbol, minute, trade_count, buy_qty, sell_qty, buy_notional, sell_notional, vwap
         FROM fill_bar_rows
         WHERE trade_date = $1 AND client_id = $2 AND ($3::text IS NULL OR account_id = $3)
           AND ($4::text IS NULL OR symbol = $4)
         ORDER BY account_id, symbol, minute
         LIMIT $5",
    )
    .bind(date)
    .bind(client.as_str())
    .bind(account)
    .bind(symbol)
    .bind(MAX_FILL_BARS as i64 + 1)
    .fetch_all(db.as_ref())
    .await?;
    if rows.len() > MAX_FILL_BARS {
        return Err(FillBarsError::TooMany);
    }
    let bars = rows
        .into_iter()
        .map(|(account_id, symbol, minute, trade_count, buy_qty, sell_qty, buy_notional, sell_notional, vwap)| {
            FillBarRow {
                account_id,
                symbol,
                minute,
                trade_count,
                buy_qty: buy_qty.to_string(),
                sell_qty: sell_qty.to_string(),
                buy_notional,
                sell_notional,
                vwap,
            }
        })
        .collect();
    Ok(FillBarsAnswer { client: client.to_string(), trade_date: date, bars })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_strict_and_dates_checked() {
        let q: FillBarsQuery = serde_urlencoded::from_str("client=7&date=2026-11-30&symbol=AAPL").unwrap();
        assert_eq!((q.client.as_str(), q.symbol.as_deref(), q.account), ("7", Some("AAPL"), None));
        assert!(serde_urlencoded::from_str::<FillBarsQuery>("client=7&as_of=x").is_err(), "an unknown parameter");
        assert!(serde_urlencoded::from_str::<FillBarsQuery>("date=2026-11-30").is_err(), "no client");
        assert_eq!(trade_date(Some("2026-11-30")).unwrap(), NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        assert!(matches!(trade_date(Some("2026-13-01")), Err(FillBarsError::BadDate(_))));
        assert!(matches!(trade_date(Some("30.11.2026")), Err(FillBarsError::DateShape(_))));
        assert!(matches!(trade_date(Some("26-11-30")), Err(FillBarsError::DateShape(_))), "year 26 is not meant");
        assert!(matches!(check_filter(Some("CQ01"), Some("A\0")), Err(FillBarsError::BadKey(_))));
        assert!(matches!(check_filter(Some(&"A".repeat(33)), None), Err(FillBarsError::BadKey(_))));
        assert!(check_filter(Some("CQ01"), Some("AAPL")).is_ok());
        assert_eq!(trade_date(None).unwrap(), Utc::now().date_naive());
    }

    #[test]
    fn a_bar_serializes_as_the_contract_says() {
        let row = FillBarRow {
            account_id: "CQ01".into(),
            symbol: "AAPL".into(),
            minute: "2026-11-30T09:31:00Z".parse().unwrap(),
            trade_count: 3,
            buy_qty: "5".into(),
            sell_qty: "0".into(),
            buy_notional: "506.25".parse().unwrap(),
            sell_notional: Decimal::ZERO,
            vwap: Some("101.25".parse().unwrap()),
        };
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"account_id":"CQ01","symbol":"AAPL","minute":"2026-11-30T09:31:00Z","trade_count":3,"buy_qty":"5","sell_qty":"0","buy_notional":"506.25","sell_notional":"0","vwap":"101.25"}"#
        );
    }
}
