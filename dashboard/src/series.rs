//! `GET /api/series?client=…[&date=YYYY-MM-DD][&step_secs=60]`: one client's intraday P&L and
//! position, summed over its rows, every `step_secs` of one trade date — what the page's P&L chart
//! draws before it appends live points. Read from Postgres `summary_series` (docs/sql.md), which
//! gives each row's last snapshot at or before every step; this module sums them per step.
//!
//! Bounded: `step_secs` is 10..=3600, so a day is at most 8,642 points (the day's span plus one
//! step either side); the query stops there in any case ([`MAX_POINTS`]).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row as _};
use tradeflow_core::ClientId;

/// The smallest step: 1 s steps would make a day 86,400 points of every row.
pub const MIN_STEP_SECS: u32 = 10;
/// The largest step: one hour.
pub const MAX_STEP_SECS: u32 = 3600;
/// The most points one answer holds (a trade date at the smallest step, with a step either side).
pub const MAX_POINTS: i64 = 86_400 / MIN_STEP_SECS as i64 + 2;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    pub client: String,
    /// The trade date, `YYYY-MM-DD`; today (UTC) when absent.
    pub date: Option<String>,
    /// Seconds between points; 60 when absent.
    pub step_secs: Option<u32>,
    pub token: Option<String>,
}

/// One point: the client's rows of the trade date summed as they stood at `at`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SeriesPoint {
    /// The step's time (UTC, RFC 3339).
    pub at: DateTime<Utc>,
    /// Rows that exist by `at`.
    pub rows: i64,
    pub trade_count: i64,
    /// Σ (buy qty − sell qty), shares (a decimal string: exact beyond 2^53).
    pub net_qty: Decimal,
    /// Σ realized P&L, in the trade currency; `null` when a row has none.
    pub realized_pnl: Option<Decimal>,
    /// Σ total P&L (realized + unrealized at the row's mark); `null` while any row has no mark
    /// (docs/pnl.md: an unmarked row's P&L is unknown, not zero).
    pub total_pnl: Option<Decimal>,
    /// Rows without a mark at `at` (why `total_pnl` is null).
    pub unmarked_rows: i64,
}

#[derive(Debug, Serialize)]
pub struct SeriesAnswer {
    pub client: String,
    pub trade_date: NaiveDate,
    pub step_secs: u32,
    /// Ascending by `at`.
    pub points: Vec<SeriesPoint>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("date must be YYYY-MM-DD: {0}")]
    BadDate(chrono::ParseError),
    #[error("step_secs must be {MIN_STEP_SECS}..={MAX_STEP_SECS}, got {0}")]
    BadStep(u32),
    #[error("the series needs the snapshot database (start the dashboard with --database-url)")]
    NoDatabase,
    #[error("reading summary_series failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl SeriesError {
    /// A fault of the request (400) rather than of the server (503).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Self::BadDate(_) | Self::BadStep(_))
    }
}

/// The checked trade date and step of a query (`today` when no date is given).
pub fn parse(query: &SeriesQuery, today: NaiveDate) -> Result<(NaiveDate, u32), SeriesError> {
    let date = match &query.date {
        None => today,
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(SeriesError::BadDate)?,
    };
    let step = query.step_secs.unwrap_or(60);
    if !(MIN_STEP_SECS..=MAX_STEP_SECS).contains(&step) {
        return Err(SeriesError::BadStep(step));
    }
    Ok((date, step))
}

/// The series of `client` on `date` every `step_secs` (already checked by [`parse`]).
pub async fn series(
    db: Option<&PgPool>,
    client: &ClientId,
    date: NaiveDate,
    step_secs: u32,
) -> Result<SeriesAnswer, SeriesError> {
    let db = db.ok_or(SeriesError::NoDatabase)?;
    let records = sqlx::query(
        "SELECT at, count(*) AS rows, sum(trade_count)::bigint AS trade_count, sum(net_qty) AS net_qty,
                CASE WHEN count(realized_pnl) = count(*) THEN sum(realized_pnl) END AS realized_pnl,
                CASE WHEN count(total_pnl) = count(*) THEN sum(total_pnl) END AS total_pnl,
                count(*) - count(mark_price) AS unmarked_rows
         FROM summary_series($1, $2, make_interval(secs => $3))
         GROUP BY at ORDER BY at LIMIT $4",
    )
    .bind(client.as_str())
    .bind(date)
    .bind(f64::from(step_secs))
    .bind(MAX_POINTS)
    .fetch_all(db)
    .await?;
    let mut points = Vec::with_capacity(records.len());
    for r in records {
        points.push(SeriesPoint {
            at: r.try_get("at")?,
            rows: r.try_get("rows")?,
            trade_count: r.try_get("trade_count")?,
            net_qty: r.try_get("net_qty")?,
            realized_pnl: r.try_get("realized_pnl")?,
            total_pnl: r.try_get("total_pnl")?,
            unmarked_rows: r.try_get("unmarked_rows")?,
        });
    }
    Ok(SeriesAnswer { client: client.to_string(), trade_date: date, step_secs, points })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(raw: &str) -> Result<SeriesQuery, serde_urlencoded::de::Error> {
        serde_urlencoded::from_str(raw)
    }

    #[test]
    fn series_queries_are_checked() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(parse(&query("client=7").unwrap(), today).unwrap(), (today, 60));
        let (date, step) = parse(&query("client=7&date=2026-11-20&step_secs=10").unwrap(), today).unwrap();
        assert_eq!((date.to_string(), step), ("2026-11-20".to_owned(), 10));
        assert!(matches!(parse(&query("client=7&date=20-11-2026").unwrap(), today), Err(SeriesError::BadDate(_))));
        assert!(matches!(parse(&query("client=7&step_secs=9").unwrap(), today), Err(SeriesError::BadStep(9))));
        assert!(matches!(parse(&query("client=7&step_secs=3601").unwrap(), today), Err(SeriesError::BadStep(3601))));
        assert!(query("client=7&step_secs=-1").is_err(), "a negative step");
        assert!(query("client=7&nope=1").is_err(), "an unknown parameter");
        assert!(query("date=2026-11-20").is_err(), "no client");
    }

    #[test]
    fn a_day_is_bounded() {
        assert_eq!(MAX_POINTS, 8_642);
    }
}
