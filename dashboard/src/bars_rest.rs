//! `GET /api/bars?symbol=AAPL[&from=RFC3339][&to=RFC3339]`: the minute price bars of a symbol from
//! Postgres `price_bars` (docs/protocol.md#get-apibars). Any client's token; rate-limited per
//! client like `/api/summary`; 400 on a bad query, 503 without a database.
//!
//! Range: bars whose minute starts in `[from, to)`; `from` defaults to the start of today (UTC),
//! `to` to the start of the minute after now (so the current minute is in). At most
//! [`MAX_RANGE`] (7 days), hence at most [`MAX_BARS`] bars (10,080), ascending by minute.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row as _};
use tradeflow_core::bars::{Bar, minute_of};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::access::Access;
use crate::limits::Gate;
use crate::metrics::Metrics;
use crate::reply::{json, refusal, text};

/// What `/api/bars` uses of the server.
pub struct BarsContext<'a> {
    pub access: &'a Access,
    pub gate: &'a Gate,
    pub db: Option<&'a Arc<PgPool>>,
    pub metrics: &'a Metrics,
}

pub const MAX_RANGE: TimeDelta = TimeDelta::days(7);
/// One bar per minute of [`MAX_RANGE`].
pub const MAX_BARS: i64 = 7 * 24 * 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarsQuery {
    pub symbol: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub token: Option<String>,
}

/// `{"symbol":"AAPL","bars":[{"minute":"…Z","open":"…","high":"…","low":"…","close":"…","ticks":N}]}`.
#[derive(Serialize)]
pub struct BarsAnswer {
    pub symbol: String,
    pub bars: Vec<Bar>,
}

#[derive(Debug, thiserror::Error)]
pub enum BarsError {
    #[error("{0}")]
    BadQuery(String),
    #[error("bars need the database (start the dashboard with --database-url)")]
    NoDatabase,
    #[error("reading price_bars failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// The `[from, to)` of a query at `now` (see the module docs).
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), BarsError> {
    let parse = |name: &str, value: &str| {
        DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)).map_err(|e| {
            BarsError::BadQuery(format!("{name} must be an RFC 3339 time such as 2026-11-30T09:30:00Z: {e}"))
        })
    };
    let from = match from {
        Some(v) => parse("from", v)?,
        None => now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
    };
    let to = match to {
        Some(v) => parse("to", v)?,
        None => minute_of(now) + TimeDelta::minutes(1),
    };
    if to < from {
        return Err(BarsError::BadQuery(format!("from {from} is after to {to}")));
    }
    if to - from > MAX_RANGE {
        return Err(BarsError::BadQuery(format!("from {from} to {to} is over the limit of 7 days")));
    }
    Ok((from, to))
}

/// The bars of `symbol` with minute in `[from, to)`.
pub async fn bars(db: &PgPool, symbol: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Bar>, BarsError> {
    let records = sqlx::query(
        "SELECT minute, open, high, low, close, ticks, open_at, close_at FROM price_bars
         WHERE symbol = $1 AND minute >= $2 AND minute < $3
           AND trade_date BETWEEN ($2 AT TIME ZONE 'UTC')::date AND ($3 AT TIME ZONE 'UTC')::date
         ORDER BY minute LIMIT $4",
    )
    .bind(symbol)
    .bind(from)
    .bind(to)
    .bind(MAX_BARS)
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        out.push(Bar {
            symbol: symbol.into(),
            minute: r.try_get("minute")?,
            open: r.try_get("open")?,
            high: r.try_get("high")?,
            low: r.try_get("low")?,
            close: r.try_get("close")?,
            ticks: r.try_get("ticks")?,
            open_at: r.try_get("open_at")?,
            close_at: r.try_get("close_at")?,
        });
    }
    Ok(out)
}

/// The `/api/bars` route over the server `state`, whose parts `parts` names.
pub fn route<S: Send + Sync + 'static>(
    state: Arc<S>,
    parts: fn(&S) -> BarsContext<'_>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    warp::path!("api" / "bars")
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::any().map(move || state.clone()))
        .then(move |query: String, authorization: Option<String>, s: Arc<S>| async move {
            answer(&parts(&s), &query, authorization.as_deref()).await
        })
}

async fn answer(s: &BarsContext<'_>, raw_query: &str, authorization: Option<&str>) -> Response {
    let query: BarsQuery = match serde_urlencoded::from_str(raw_query) {
        Ok(q) => q,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad query: {e} (expected symbol=…[&from=RFC3339][&to=RFC3339])\n"),
            );
        }
    };
    let token = authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).or(query.token.as_deref());
    let entitled = match s.access.entitle(token) {
        Ok(e) => e,
        Err(r) => return refusal(s.metrics, &r),
    };
    // Rate-limited per client (auth off: all requests share one bucket).
    let bucket = entitled.as_ref().map(|c| c.as_str()).unwrap_or("");
    if !s.gate.rest(bucket) {
        s.metrics.rest_refused.fetch_add(1, Relaxed);
        let limit = s.gate.limits.rest_per_minute;
        return text(StatusCode::TOO_MANY_REQUESTS, format!("over {limit} requests a minute; retry later\n"));
    }
    if let Err(e) = tradeflow_core::edge::check_outside_key("symbol", &query.symbol) {
        return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
    }
    s.metrics.rest_requests.fetch_add(1, Relaxed);
    let result = async {
        let (from, to) = range(query.from.as_deref(), query.to.as_deref(), Utc::now())?;
        let db = s.db.ok_or(BarsError::NoDatabase)?;
        bars(db, &query.symbol, from, to).await
    }
    .await;
    match result {
        Ok(bars) => json(&BarsAnswer { symbol: query.symbol, bars }),
        Err(e @ BarsError::BadQuery(_)) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Err(e) => {
            tracing::warn!(error = %e, "bars query failed");
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_defaults_to_today_and_is_at_most_seven_days() {
        let now: DateTime<Utc> = "2026-11-30T09:31:30Z".parse().unwrap();
        let (from, to) = range(None, None, now).unwrap();
        assert_eq!(
            (from.to_rfc3339(), to.to_rfc3339()),
            ("2026-11-30T00:00:00+00:00".into(), "2026-11-30T09:32:00+00:00".into())
        );
        assert!(range(Some("2026-11-23T09:32:00Z"), None, now).is_ok(), "exactly 7 days");
        assert!(matches!(range(Some("2026-11-23T09:31:59Z"), None, now), Err(BarsError::BadQuery(_))));
        assert!(matches!(range(Some("yesterday"), None, now), Err(BarsError::BadQuery(_))));
        assert!(matches!(
            range(Some("2026-11-30T10:00:00Z"), Some("2026-11-30T09:00:00Z"), now),
            Err(BarsError::BadQuery(_))
        ));
        assert!(serde_urlencoded::from_str::<BarsQuery>("symbol=A&nope=1").is_err());
        assert!(serde_urlencoded::from_str::<BarsQuery>("from=2026-11-30T00:00:00Z").is_err(), "no symbol");
    }
}
