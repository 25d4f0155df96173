//! Snapshot history at scale (docs/sql.md): the date-partitioned layout, the in-place upgrade from
//! the first layout, retention by whole dates, and the per-client series — on a real Postgres.

use std::borrow::Cow;

use chrono::{Days, NaiveDate, Utc};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tradeflow_aggregator::store::MIGRATOR;

use crate::aggregator::Pipeline;
use crate::harness::{self, TestDatabase};

/// Every row of `summary_as_of(t)` (of one trade date, if given), as JSON text, in key order; without
/// the P&L columns (added by a later migration: an upgraded database answers the same as-of rows).
async fn as_of_on(pool: &PgPool, t: &str, date: Option<NaiveDate>) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT (to_jsonb(a) - 'realized_pnl' - 'unrealized_pnl' - 'total_pnl')::text FROM summary_as_of($1::timestamptz) a
         WHERE $2::date IS NULL OR trade_date = $2
         ORDER BY trade_date, client_id, account_id, symbol",
    )
    .bind(t)
    .bind(date)
    .fetch_all(pool)
    .await
    .expect("summary_as_of")
}

async fn as_of(pool: &PgPool, t: &str) -> Vec<String> {
    as_of_on(pool, t, None).await
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn a_database_in_the_first_layout_upgrades_in_place_and_answers_as_of_the_same() {
    let db = TestDatabase::create().await;
    let first = Migrator { migrations: Cow::Owned(MIGRATOR.migrations[..1].to_vec()), ..Migrator::DEFAULT };
    first.run(&db.pool).await.expect("the first migration");
    // History in the first layout: 3 dates × 4 clients × 6 keys × 20 versions, 10 s apart, each key
    // starting at its own time (so keys appear and change at different moments).
    sqlx::raw_sql(
        "INSERT INTO summary_history
         SELECT date '2026-11-18' + d, c::text, 'CQ0' || (k % 3 + 1), (ARRAY['AAPL','AMZN'])[k / 3 + 1],
                v, v * 10, v * 7, v * 10 * 100.5, v * 7 * 99.25, 100.5, 99.25, 101,
                timestamp '2026-11-18 09:00' + d * interval '1 day',
                timestamp '2026-11-18 09:00' + d * interval '1 day' + v * interval '1 s', 0, 0, NULL, NULL,
                c % 12, v * 100,
                timestamptz '2026-11-18 09:00Z' + d * interval '1 day' + (v * 10 + c + k) * interval '1 s'
         FROM generate_series(0, 2) d, generate_series(1, 4) c, generate_series(0, 5) k, generate_series(1, 20) v;
         INSERT INTO summary_current
         SELECT DISTINCT ON (trade_date, client_id, account_id, symbol) * FROM summary_history
         ORDER BY trade_date, client_id, account_id, symbol, snapshot_at DESC;",
    )
    .execute(&db.pool)
    .await
    .expect("history in the first layout");
    let times = ["2026-11-18 09:00:14Z", "2026-11-19 09:01:00Z", "2026-11-20 09:02:10Z", "2026-11-21 00:00Z"];
    let mut before = Vec::new();
    for t in times {
        before.push(as_of(&db.pool, t).await);
    }
    assert!(before[0].len() > 4 && before[0].len() < 24, "keys appear over time: {}", before[0].len());
    assert_eq!(before[3].len(), 3 * 4 * 6);

    MIGRATOR.run(&db.pool).await.expect("the upgrade");
    for (t, expected) in times.iter().zip(&before) {
        assert_eq!(&as_of(&db.pool, t).await, expected, "as of {t} after the upgrade");
    }
    assert_eq!(count(&db.pool, "SELECT count(*) FROM summary_history").await, 3 * 4 * 6 * 20);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM summary_keys").await, 3 * 4 * 6);
    // The P&L migration gave every upgraded version its realized P&L: 7v matched × (99.25 − 100.5).
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM summary_history WHERE realized_pnl = sell_qty * (-1.25)").await,
        3 * 4 * 6 * 20
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM summary_as_of(now()) WHERE realized_pnl IS NULL").await, 0);
    let partitions =
        count(&db.pool, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'summary_history'::regclass").await;
    assert_eq!(partitions, 3, "one partition per trade date");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM pg_class WHERE relname = 'summary_history_v1'").await, 0);
    // The plan probes keys, not a sort over every version (the point of the layout).
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM summary_as_of('2026-11-19 09:01Z') WHERE trade_date = '2026-11-19'")
            .fetch_all(&db.pool)
            .await
            .expect("explain");
    let plan = plan.join("\n");
    assert!(plan.contains("summary_keys") && plan.contains("Limit"), "{plan}");
    // Each probe reads only its date's partition: the others are pruned at run time.
    assert!(
        plan.lines()
            .filter(|l| l.contains(" on summary_history_20261118") || l.contains(" on summary_history_20261120"))
            .all(|l| l.contains("never executed")),
        "other dates' partitions are not read:\n{plan}"
    );
    assert!(plan.contains("on summary_history_20261119"), "{plan}");
}

#[tokio::test]
async fn retention_drops_whole_old_dates_and_leaves_current_rows() {
    // Two trade dates 10 and 9 days ago (the backlog crosses midnight), through the real pipeline.
    let today = Utc::now().date_naive();
    let old = today - Days::new(10);
    let kept = today - Days::new(9);
    let p = Pipeline::new().await;
    let start = format!("{old}T23:59:40");
    p.produce(&["--clients", "1,2", "--count", "1200", "--rate", "20", "--seed", "5", "--start", &start]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let aggregator = p.start("aggregator", harness::broker::free_port());
    p.converges().await;
    let dates: Vec<NaiveDate> = sqlx::query_scalar("SELECT DISTINCT trade_date FROM summary_current ORDER BY 1")
        .fetch_all(&p.db.pool)
        .await
        .expect("dates");
    assert_eq!(dates, vec![old, kept], "the backlog crosses midnight");
    drop(aggregator);
    let current_before = count(&p.db.pool, "SELECT count(*) FROM summary_current").await;
    let kept_as_of = as_of_on(&p.db.pool, "infinity", Some(kept)).await;
    assert!(!kept_as_of.is_empty() && !as_of_on(&p.db.pool, "infinity", Some(old)).await.is_empty());

    // The per-client series over the kept day: its last point is the client's current rows.
    let series_last: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT account_id, symbol, trade_count FROM summary_series('1', $1, '1 second')
         WHERE at = (SELECT max(at) FROM summary_series('1', $1, '1 second')) ORDER BY 1, 2",
    )
    .bind(kept)
    .fetch_all(&p.db.pool)
    .await
    .expect("series");
    let current_1: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT account_id, symbol, trade_count FROM summary_current WHERE client_id = '1' AND trade_date = $1 ORDER BY 1, 2",
    )
    .bind(kept)
    .fetch_all(&p.db.pool)
    .await
    .expect("current");
    assert!(!current_1.is_empty());
    assert_eq!(series_last, current_1);

    // `tradeflow history --history-days 9`: the date 10 days ago goes, whole.
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["history", "--history-days", "9"])
        .env("DATABASE_URL", &p.db.url)
        .output()
        .expect("tradeflow history");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("dropped\t{old}")), "{stdout}");
    assert!(!stdout.contains(&format!("dropped\t{kept}")), "{stdout}");
    let partition = |d: NaiveDate| format!("summary_history_{}", d.format("%Y%m%d"));
    let exists = |name: String| {
        let pool = p.db.pool.clone();
        async move { count(&pool, &format!("SELECT count(*) FROM pg_class WHERE relname = '{name}'")).await == 1 }
    };
    assert!(!exists(partition(old)).await, "the old date's partition is dropped");
    assert!(exists(partition(kept)).await && exists(partition(today)).await, "kept and today's partitions exist");
    assert_eq!(count(&p.db.pool, &format!("SELECT count(*) FROM summary_keys WHERE trade_date = '{old}'")).await, 0);
    assert_eq!(count(&p.db.pool, &format!("SELECT count(*) FROM summary_history WHERE trade_date = '{old}'")).await, 0);
    // summary_current is untouched, the kept date's as-of is unchanged, and the oracle still agrees.
    assert_eq!(count(&p.db.pool, "SELECT count(*) FROM summary_current").await, current_before);
    assert_eq!(as_of_on(&p.db.pool, "infinity", Some(kept)).await, kept_as_of);
    assert!(as_of_on(&p.db.pool, "infinity", Some(old)).await.is_empty(), "the old date has no history left");
    p.converges().await;

    // A second run has nothing left to drop.
    let again = tradeflow_aggregator::history::upkeep(
        &p.db.pool,
        &tradeflow_aggregator::history::RetentionArgs { history_days: 9 },
        today,
    )
    .await
    .expect("upkeep");
    assert!(again.dropped.is_empty(), "{again:?}");
    p.cleanup();
}
