//! `GET /api/summary?client=…[&account=…][&symbol=…][&as_of=…]`: the live rows from memory, or the
//! rows as of a past time from the Postgres snapshot tables (`summary_as_of`).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row as _};
use tradeflow_core::ClientId;
use tradeflow_core::summary::{Mark, SummaryRow};

use crate::day_open::OpenMarks;
use crate::live::{Live, lock};
use crate::positions::{PositionRow, positions};
use crate::row::Filter;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    pub client: String,
    pub account: Option<String>,
    pub symbol: Option<String>,
    pub as_of: Option<String>,
    pub token: Option<String>,
}

#[derive(Serialize)]
pub struct SummaryAnswer {
    pub client: String,
    /// `null` for live rows.
    pub as_of: Option<DateTime<Utc>>,
    /// The feed position of live rows (`null` for as-of rows).
    pub seq: Option<u64>,
    pub epoch: Option<String>,
    pub rows: Vec<SummaryRow>,
    /// The holdings of `rows` across their dates (docs/pnl.md#holdings).
    pub positions: Vec<PositionRow>,
}

impl SummaryAnswer {
    fn new(
        client: &ClientId,
        as_of: Option<DateTime<Utc>>,
        seq: Option<u64>,
        epoch: Option<String>,
        rows: Vec<SummaryRow>,
        day: NaiveDate,
        open_marks: &OpenMarks,
    ) -> Self {
        let shared: Vec<Arc<SummaryRow>> = rows.iter().cloned().map(Arc::new).collect();
        let positions = positions(&shared, None, day, open_marks);
        Self { client: client.to_string(), as_of, seq, epoch, rows, positions }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("as_of must be an RFC 3339 time such as 2026-11-23T15:00:00Z: {0}")]
    BadTime(chrono::ParseError),
    #[error("as-of queries need the snapshot database (start the dashboard with --database-url)")]
    NoDatabase,
    #[error("reading the snapshot tables failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("bad row in the snapshot tables: {0}")]
    BadRow(String),
}

/// The live rows (a client without rows gets none at seq 0; no feed is created for it).
pub fn live_rows(live: &Live, client: &ClientId, filter: &Filter) -> SummaryAnswer {
    let now = Utc::now();
    let (seq, rows) = match live.existing_feed(client) {
        Some(feed) => {
            let feed = lock(&feed);
            // Staleness as of the request.
            (feed.seq(), feed.rows(filter).iter().map(|r| r.with_mark(r.mark().as_ref(), now)).collect())
        }
        None => (0, Vec::new()),
    };
    let open_marks = live.day_open.snapshot();
    SummaryAnswer::new(client, None, Some(seq), Some(live.epoch.clone()), rows, now.date_naive(), &open_marks)
}

pub async fn as_of_rows(
    db: Option<&Arc<PgPool>>,
    client: &ClientId,
    filter: &Filter,
    as_of: &str,
) -> Result<SummaryAnswer, QueryError> {
    let at = DateTime::parse_from_rfc3339(as_of).map_err(QueryError::BadTime)?.with_timezone(&Utc);
    let db = db.ok_or(QueryError::NoDatabase)?;
    let records = sqlx::query(
        "SELECT trade_date, client_id, account_id, symbol, trade_count, buy_qty, sell_qty, buy_notional, sell_notional,
                avg_buy_price, avg_sell_price, last_price, first_trade_at, last_trade_at, mark_price, mark_at
         FROM summary_as_of($1)
         WHERE client_id = $2 AND ($3::text IS NULL OR account_id = $3) AND ($4::text IS NULL OR symbol = $4)
         ORDER BY trade_date, account_id, symbol",
    )
    .bind(at)
    .bind(client.as_str())
    .bind(filter.account.as_deref())
    .bind(filter.symbol.as_deref())
    .fetch_all(db.as_ref())
    .await?;
    let mut rows = Vec::with_capacity(records.len());
    for r in records {
        let client_id: String = r.try_get("client_id")?;
        let buy_qty: i64 = r.try_get("buy_qty")?;
        let sell_qty: i64 = r.try_get("sell_qty")?;
        let mark =
            match (r.try_get::<Option<Decimal>, _>("mark_price")?, r.try_get::<Option<DateTime<Utc>>, _>("mark_at")?) {
                (Some(price), Some(at)) => Some(Mark { price, at }),
                _ => None,
            };
        let row = SummaryRow {
            trade_date: r.try_get::<NaiveDate, _>("trade_date")?,
            client_id: ClientId::parse(&client_id).map_err(|e| QueryError::BadRow(e.to_string()))?,
            account_id: r.try_get::<String, _>("account_id")?.into(),
            symbol: r.try_get::<String, _>("symbol")?.into(),
            trade_count: r.try_get("trade_count")?,
            buy_qty,
            sell_qty,
            net_qty: buy_qty as i128 - sell_qty as i128,
            buy_notional: r.try_get("buy_notional")?,
            sell_notional: r.try_get("sell_notional")?,
            avg_buy_price: r.try_get("avg_buy_price")?,
            avg_sell_price: r.try_get("avg_sell_price")?,
            last_price: r.try_get("last_price")?,
            first_trade_at: r.try_get::<NaiveDateTime, _>("first_trade_at")?,
            last_trade_at: r.try_get::<NaiveDateTime, _>("last_trade_at")?,
            mark_price: None,
            mark_at: None,
            market_value: None,
            mark_stale: None,
            // Derived from the row's book by `with_mark` below (the oracle's code, not the stored copy).
            realized_pnl: None,
            unrealized_pnl: None,
            total_pnl: None,
        };
        // Staleness as it was at `as_of`.
        rows.push(row.with_mark(mark.as_ref(), at));
    }
    // The day P&L of the holdings on the as-of date, against that day's open marks.
    let day = at.date_naive();
    let mut symbols: Vec<String> = rows.iter().map(|r| r.symbol.to_string()).collect();
    symbols.sort();
    symbols.dedup();
    let open_marks = crate::day_open::read(db, &symbols, day).await?;
    Ok(SummaryAnswer::new(client, Some(at), None, None, rows, day, &open_marks))
}
