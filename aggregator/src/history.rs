//! Snapshot history upkeep: the date partitions of `summary_history`, `price_bars` and `fill_bars` a
//! snapshot is about to need are created ahead (yesterday, today and tomorrow, UTC), and with
//! `--history-days N` the partitions of trade dates more than N days before today are dropped
//! whole — the history with its keys in `summary_keys`, the minute price bars and the fill bars —
//! while `summary_current` is untouched. The aggregator does this at start and
//! hourly; `tradeflow history` does it once.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use clap::Args;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// How often a running aggregator applies retention and creates partitions ahead.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(3600);

/// `--history-days`: the retention of `summary_history`.
#[derive(Args, Clone, Debug, Default)]
pub struct RetentionArgs {
    /// Keep the snapshot history of trade dates at most this many days before today (UTC); older
    /// date partitions are dropped whole. 0 keeps every date.
    #[arg(long, env = "TRADEFLOW_HISTORY_DAYS", default_value_t = 0)]
    pub history_days: u32,
}

/// What one upkeep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// Partitions made sure of (created or already there).
    pub partitions: Vec<String>,
    /// Trade dates whose history was dropped.
    pub dropped: Vec<NaiveDate>,
    /// Trade dates whose minute price bars were dropped.
    pub bars_dropped: Vec<NaiveDate>,
}

/// The first trade date kept when keeping `days` days before `today` (`None`: keep all).
pub fn cutoff(today: NaiveDate, days: u32) -> Option<NaiveDate> {
    (days > 0).then(|| today - chrono::Days::new(u64::from(days)))
}

/// Creates the partitions around `today` and drops the dates before the retention cutoff.
pub async fn upkeep(pool: &PgPool, retention: &RetentionArgs, today: NaiveDate) -> Result<Upkeep, StoreError> {
    let around: Vec<NaiveDate> = [today.pred_opt(), Some(today), today.succ_opt()].into_iter().flatten().collect();
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT p FROM UNNEST($1::date[]) AS u(d),
             LATERAL (VALUES (summary_history_partition(d)), (fill_bars_partition(d)), (price_bars_partition(d))) AS v(p)",
    )
    .bind(&around)
    .fetch_all(pool)
    .await?;
    let (dropped, bars_dropped) = match cutoff(today, retention.history_days) {
        Some(cutoff) => {
            let mut dropped = drop_before(pool, "summary_history_drop_before", cutoff).await?;
            // The fill bars (migration 20261130000400) go with the history of their dates.
            dropped.extend(drop_before(pool, "fill_bars_drop_before", cutoff).await?);
            dropped.sort();
            dropped.dedup();
            (dropped, drop_before(pool, "price_bars_drop_before", cutoff).await?)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Upkeep { partitions, dropped, bars_dropped })
}

/// Runs one of the retention functions (`summary_history_drop_before`, `price_bars_drop_before`).
async fn drop_before(pool: &PgPool, function: &str, cutoff: NaiveDate) -> Result<Vec<NaiveDate>, StoreError> {
    let mut tx = pool.begin().await?;
    // Dropping a partition waits for the transactions writing the table: bounded, retried next time.
    sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
    let dropped = sqlx::query_scalar(&format!("SELECT {function}($1)")).bind(cutoff).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(dropped)
}

/// Runs [`upkeep`] now and every [`UPKEEP_EVERY`] until `shutdown`; failures are logged and retried.
pub async fn keep_up(pool: PgPool, retention: RetentionArgs, shutdown: CancellationToken) {
    loop {
        match upkeep(&pool, &retention, Utc::now().date_naive()).await {
            Ok(done) if !done.dropped.is_empty() || !done.bars_dropped.is_empty() => {
                tracing::info!(dropped = ?done.dropped, bars_dropped = ?done.bars_dropped, days = retention.history_days, "snapshot history and price bars past retention dropped")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "history upkeep failed; retried in an hour"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_keeps_today_and_n_days_before() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(cutoff(today, 0), None);
        assert_eq!(cutoff(today, 1), NaiveDate::from_ymd_opt(2026, 11, 25));
        assert_eq!(cutoff(today, 30), NaiveDate::from_ymd_opt(2026, 10, 27));
    }
}
