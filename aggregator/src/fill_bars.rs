//! Fill bars in Postgres (`fill_bars`, written with the rows by the snapshot) against the oracle's
//! (`tradeflow_core::fill_bars`): every field, exactly. Part of `tradeflow verify`.
//!
//! `fill_bars` is partitioned by trade date and retention (`tradeflow history --history-days`)
//! drops old dates whole, while `summary_current` keeps their rows: the bars of a trade date
//! without a partition are not compared, and named ([`dates_past_retention`]) — a date is never
//! without its partition otherwise (the snapshot creates it before writing; the migration made
//! those of the dates that had rows).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tradeflow_core::ClientId;
use tradeflow_core::fill_bars::FillBar;
use tradeflow_core::oracle::Oracle;
use tradeflow_core::summary::SummaryKey;

use crate::store::StoreError;

/// A bar's identity: its row and the start of its UTC minute.
pub type BarKey = (SummaryKey, NaiveDateTime);

/// One difference between `fill_bars` and the oracle.
#[derive(Clone, Debug, PartialEq)]
pub enum BarDifference {
    Missing(BarKey),
    Unexpected(BarKey),
    Differs { key: BarKey, stored: FillBar, expected: FillBar },
}

impl std::fmt::Display for BarDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |(k, m): &BarKey| format!("{}|{}Z", k.kafka_key(), m.format("%Y-%m-%dT%H:%M:%S"));
        match self {
            BarDifference::Missing(k) => write!(f, "missing bar    {}", name(k)),
            BarDifference::Unexpected(k) => write!(f, "unexpected bar {}", name(k)),
            BarDifference::Differs { key, stored, expected } => {
                write!(f, "differs bar    {}\n  stored:   {stored:?}\n  expected: {expected:?}", name(key))
            }
        }
    }
}

/// The stored fill bars, and the trade dates `fill_bars` has a partition for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredFillBars {
    pub bars: BTreeMap<BarKey, FillBar>,
    pub partitions: BTreeSet<NaiveDate>,
}

/// Every stored fill bar, with the dates that have a partition.
pub async fn current_fill_bars(pool: &PgPool) -> Result<StoredFillBars, StoreError> {
    let partitions: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::date
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'fill_bars'::regclass",
    )
    .fetch_all(pool)
    .await?;
    Ok(StoredFillBars { bars: stored_bars(pool).await?, partitions: partitions.into_iter().collect() })
}

async fn stored_bars(pool: &PgPool) -> Result<BTreeMap<BarKey, FillBar>, StoreError> {
    type Row = (NaiveDate, String, String, String, DateTime<Utc>, i64, i64, i64, Decimal, Decimal);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT trade_date, client_id, account_id, symbol, minute, trade_count, buy_qty, sell_qty, buy_notional,
                sell_notional FROM fill_bars",
    )
    .fetch_all(pool)
    .await?;
    let mut out = BTreeMap::new();
    for (date, client, account, symbol, minute, trade_count, buy_qty, sell_qty, buy_notional, sell_notional) in rows {
        let client_id = ClientId::parse(&client).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let key = SummaryKey { trade_date: date, client_id, account_id: account.into(), symbol: symbol.into() };
        let bar = FillBar { trade_count, buy_qty, sell_qty, buy_notional, sell_notional };
        out.insert((key, minute.naive_utc()), bar);
    }
    Ok(out)
}

/// The oracle's trade dates whose bars retention dropped (no partition): not compared.
pub fn dates_past_retention(stored: &StoredFillBars, oracle: &Oracle) -> BTreeSet<NaiveDate> {
    oracle.fill_bars.keys().map(|k| k.trade_date).filter(|d| !stored.partitions.contains(d)).collect()
}

/// The differences between the stored bars and the oracle's (empty: equal), on the dates that
/// have a partition. Decimal equality ignores scale (2.50 == 2.5), as NUMERIC does.
pub fn compare_fill_bars(stored: &StoredFillBars, oracle: &Oracle) -> Vec<BarDifference> {
    let mut diffs = Vec::new();
    let kept = |d: NaiveDate| stored.partitions.contains(&d);
    for (row, bars) in oracle.fill_bars.iter().filter(|(k, _)| kept(k.trade_date)) {
        for (minute, expected) in bars {
            let key = (row.clone(), *minute);
            match stored.bars.get(&key) {
                None => diffs.push(BarDifference::Missing(key)),
                Some(s) if s != expected => {
                    diffs.push(BarDifference::Differs { key, stored: s.clone(), expected: expected.clone() })
                }
                Some(_) => {}
            }
        }
    }
    for key in stored.bars.keys() {
        if !oracle.fill_bars.get(&key.0).is_some_and(|bars| bars.contains_key(&key.1)) {
            diffs.push(BarDifference::Unexpected(key.clone()));
        }
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_differing_and_unexpected_bars_are_each_reported() {
        let client = ClientId::parse("7").unwrap();
        let mut oracle = Oracle::new();
        for line in [
            "Activity Time:2026.11.22 09:30:00.1|Symbol:AAPL|Side:B|Price:10.5|Quantity:2|AccountID:CQ01",
            "Activity Time:2026.11.22 09:31:00.1|Symbol:AAPL|Side:S|Price:11|Quantity:1|AccountID:CQ01",
        ] {
            assert!(oracle.apply_line(&client, line.as_bytes()));
        }
        let mut stored = StoredFillBars::default();
        for (row, bars) in &oracle.fill_bars {
            stored.partitions.insert(row.trade_date);
            for (minute, bar) in bars {
                stored.bars.insert((row.clone(), *minute), bar.clone());
            }
        }
        assert!(compare_fill_bars(&stored, &oracle).is_empty());
        let keys: Vec<BarKey> = stored.bars.keys().cloned().collect();
        let (first, last) = (keys[0].clone(), keys[keys.len() - 1].clone());
        if let Some(bar) = stored.bars.get_mut(&first) {
            bar.buy_qty += 1;
        }
        stored.bars.remove(&last);
        let mut extra = first.clone();
        extra.1 += chrono::Duration::minutes(5);
        stored.bars.insert(extra.clone(), FillBar::default());
        let diffs = compare_fill_bars(&stored, &oracle);
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(matches!(&diffs[0], BarDifference::Differs { key, .. } if *key == first));
        assert_eq!(diffs[1], BarDifference::Missing(last));
        assert_eq!(diffs[2], BarDifference::Unexpected(extra));
        // A date whose partition retention dropped is named, not compared.
        stored.partitions.clear();
        assert!(compare_fill_bars(&stored, &oracle).iter().all(|d| matches!(d, BarDifference::Unexpected(_))));
        assert_eq!(dates_past_retention(&stored, &oracle).len(), 1);
    }
}
