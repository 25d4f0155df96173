//! Day-open marks for the holdings' day P&L (docs/pnl.md#day-pl): per symbol, the previous close
//! before today (UTC), else today's first open — read from Postgres (`day_open_mark(symbol, day)`
//! over `price_bars`) for the symbols the dashboard holds rows of: every [`REFRESH`], and within
//! [`CHECK`] of a new symbol or a new day. Without a database there are none, and a holding with an
//! opening position shows a null day P&L.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use compact_str::CompactString;
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the day-open marks are read again regardless (today's first bar may appear late).
pub const REFRESH: Duration = Duration::from_secs(15);
/// How often the symbols and the day are looked at for a change.
pub const CHECK: Duration = Duration::from_secs(1);

/// The day-open marks of one day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenMarks {
    /// The day D they are for (`None`: none known).
    pub day: Option<NaiveDate>,
    pub marks: HashMap<CompactString, Decimal>,
}

impl OpenMarks {
    /// The day-open mark of `symbol` on `day`, if known.
    pub fn get(&self, symbol: &str, day: NaiveDate) -> Option<Decimal> {
        (self.day == Some(day)).then(|| self.marks.get(symbol).copied()).flatten()
    }
}

/// The current day's marks, shared.
#[derive(Default)]
pub struct LiveOpenMarks(RwLock<OpenMarks>);

impl LiveOpenMarks {
    pub fn snapshot(&self) -> OpenMarks {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, marks: OpenMarks) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = marks;
    }
}

/// Reads the day-open marks of `symbols` on `day` from Postgres.
pub async fn read(db: &PgPool, symbols: &[String], day: NaiveDate) -> Result<OpenMarks, sqlx::Error> {
    let rows: Vec<(String, Option<Decimal>)> =
        sqlx::query_as("SELECT s, day_open_mark(s, $2) FROM UNNEST($1::text[]) AS u(s)")
            .bind(symbols)
            .bind(day)
            .fetch_all(db)
            .await?;
    let marks = rows.into_iter().filter_map(|(s, m)| Some((CompactString::from(s), m?))).collect();
    Ok(OpenMarks { day: Some(day), marks })
}

/// Reads today's marks of the `symbols()` of the moment into `set` (see the module docs) until
/// `shutdown`; failures are logged and retried at the next [`REFRESH`].
pub async fn follow(
    db: Arc<PgPool>,
    symbols: impl Fn() -> Vec<String>,
    set: impl Fn(OpenMarks),
    shutdown: CancellationToken,
) {
    let mut read_for: Option<(NaiveDate, HashSet<String>)> = None;
    let mut last_read = tokio::time::Instant::now();
    loop {
        let day = Utc::now().date_naive();
        let now_symbols = symbols();
        let changed = match &read_for {
            None => true,
            Some((d, known)) => *d != day || now_symbols.iter().any(|s| !known.contains(s)),
        };
        if changed || last_read.elapsed() >= REFRESH {
            last_read = tokio::time::Instant::now();
            match read(&db, &now_symbols, day).await {
                Ok(marks) => set(marks),
                Err(e) => tracing::warn!(error = %e, "reading day-open marks failed; retried in 15 s"),
            }
            read_for = Some((day, now_symbols.into_iter().collect()));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK) => {}
        }
    }
}
