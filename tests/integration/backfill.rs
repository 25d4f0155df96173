//! Backfill while live: `tradeflow backfill` fenced against the running aggregators (it takes the
//! partitions like a new owner, with a lease and a new rebuild generation), reaching the page, and
//! surviving its own death; one at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tradeflow_aggregator::changelog::SummaryChange;
use tradeflow_aggregator::verify::current_rows;
use tradeflow_core::ClientId;
use tradeflow_core::summary::{Position, SummaryKey};

use crate::aggregator::Pipeline;
use crate::dashboard::Dash;
use crate::harness::http::metric;
use crate::harness::{self, Service, eventually};

const LONG: Duration = Duration::from_secs(120);

/// `tradeflow backfill ARGS` on the pipeline's topics and database, leases of 3 s.
fn command(p: &Pipeline, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(harness::tradeflow_bin());
    cmd.arg("backfill").args(args).envs(p.env()).env("TRADEFLOW_BACKFILL_LEASE_SECS", "3");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn backfill(p: &Pipeline, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    command(p, args, env).output().expect("run tradeflow backfill")
}

/// Starts a backfill that holds the lock and every partition for `ms` after reading, and waits
/// until it holds them.
async fn holding(p: &Pipeline, args: &[&str], ms: u32) -> std::process::Child {
    let child = command(p, args, &[("TRADEFLOW_BACKFILL_FAULT", &format!("hold:{ms}"))])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("backfill");
    eventually("the backfill to hold every partition", LONG, || async {
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM partition_offsets WHERE rebuild_until > now()")
            .fetch_one(&p.db.pool)
            .await
            .ok()?;
        (held == 12).then_some(())
    })
    .await;
    child
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Client `client`'s rows in Postgres: (account, symbol) → trade count.
async fn stored_counts(p: &Pipeline, client: &str) -> BTreeMap<(String, String), i64> {
    current_rows(&p.db.pool)
        .await
        .expect("rows")
        .into_iter()
        .filter(|(k, _)| k.client_id.as_str() == client)
        .map(|(k, pos)| ((k.account_id.to_string(), k.symbol.to_string()), pos.trade_count))
        .collect()
}

/// Merges a subscriber's frames (snapshot, then deltas) into (account, symbol) → trade count.
fn merge(view: &mut BTreeMap<(String, String), i64>, frame: &Value) {
    for r in frame["rows"].as_array().into_iter().flatten() {
        if let (Some(a), Some(s), Some(n)) = (r["account_id"].as_str(), r["symbol"].as_str(), r["trade_count"].as_i64())
        {
            view.insert((a.to_owned(), s.to_owned()), n);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_of_today_while_trades_flow_equals_the_oracle_and_reaches_the_page() {
    let p = Pipeline::new().await;
    let mut producer = Service::producer(
        &["--clients", "1,2,3,4", "--rate", "150", "--count", "3000", "--seed", "41"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    let dash = Dash::start_on(p.topics.clone(), &[], &[("DATABASE_URL", p.db.url.clone())]).await;
    let mut ws = dash.connect("1").await;
    ws.send(json!({"op": "subscribe", "client": "1"})).await;
    let mut view = BTreeMap::new();
    merge(&mut view, &ws.expect("snapshot", LONG).await);
    // Client 1's rows exist in Postgres (a snapshot happened).
    let (key, position, partition) = eventually("client 1 in Postgres", LONG, || async {
        let (date, account, symbol, partition): (chrono::NaiveDate, String, String, i32) = sqlx::query_as(
            "SELECT trade_date, account_id, symbol, source_partition FROM summary_current WHERE client_id = '1' LIMIT 1",
        )
        .fetch_optional(&p.db.pool)
        .await
        .ok()??;
        let key = SummaryKey {
            trade_date: date,
            client_id: ClientId::parse("1").ok()?,
            account_id: account.into(),
            symbol: symbol.into(),
        };
        let position = current_rows(&p.db.pool).await.ok()?.remove(&key)?;
        Some((key, position, partition))
    })
    .await;
    // A wrong version of that row on the page, from the same partition, far ahead of any real
    // offset: no live change of the current generation can replace it; only a rebuilt one can.
    let bogus = SummaryChange::new(&key, &Position { trade_count: 999_999, ..position }, None, partition, 1 << 40);
    let kafka_producer: FutureProducer = p.topics.kafka.client_config().create().expect("producer");
    kafka_producer
        .send(
            FutureRecord::to(&p.topics.topics.summaries).key(&key.kafka_key()).payload(&bogus.to_json()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("publish the wrong version");
    let wrong = (key.account_id.to_string(), key.symbol.to_string());
    let frames = ws
        .collect_until(LONG, |frames| {
            frames.iter().any(|f| f["rows"].as_array().into_iter().flatten().any(|r| r["trade_count"] == 999_999))
        })
        .await;
    frames.iter().for_each(|f| merge(&mut view, f));
    assert_eq!(view.get(&wrong), Some(&999_999), "the page shows the wrong version");

    // While the producer still writes: rebuild today.
    let today = Utc::now().date_naive().to_string();
    assert!(producer.running(), "the backfill runs while trades flow");
    let out = backfill(&p, &["--from", &today, "--to", &today], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("rows written"), "{}", text(&out));
    producer.exited("producer", LONG).await;
    // Postgres equals the oracle (nothing lost or doubled across the fencing and the reload)…
    p.converges().await;
    let owned = metric(port, "tradeflow_aggregator_partitions_owned").await;
    assert_eq!(owned, Some(12), "the live aggregator owns every partition again");
    let reloaded = metric(port, "tradeflow_aggregator_rebuilt_reloads_total").await.unwrap_or(0);
    assert!(reloaded >= 1, "the live owner was fenced by the rebuild and loaded it again: {reloaded}");
    // …and the page was told: the subscriber's rows equal Postgres, the wrong version replaced.
    let expected = stored_counts(&p, "1").await;
    let frames = ws
        .collect_until(LONG, |frames| {
            let mut v = view.clone();
            frames.iter().for_each(|f| merge(&mut v, f));
            v == expected
        })
        .await;
    frames.iter().for_each(|f| merge(&mut view, f));
    assert_eq!(view, expected, "the subscriber's rows equal Postgres");
    p.cleanup();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_killed_midway_leaves_the_rows_and_a_second_run_completes() {
    let p = Pipeline::new().await;
    p.produce(&["--clients", "1,2,3,4,5,6", "--count", "800", "--seed", "43", "--start", "2026-11-20T09:00:00"]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    p.converges().await;
    // Wrong rows (as a bug would leave them): the backfill is to repair them.
    sqlx::query("UPDATE summary_current SET trade_count = trade_count + 1000")
        .execute(&p.db.pool)
        .await
        .expect("corrupt");
    let before = current_rows(&p.db.pool).await.expect("rows");
    let partitions_with_rows: Vec<i32> =
        sqlx::query_scalar("SELECT DISTINCT source_partition FROM summary_current ORDER BY 1")
            .fetch_all(&p.db.pool)
            .await
            .expect("partitions");
    assert!(partitions_with_rows.len() >= 3, "{partitions_with_rows:?}");

    // kill -9 while it holds every partition (after reading, before writing): nothing is written,
    // the leases lapse (3 s) and the live aggregator takes its partitions back.
    let mut held = holding(&p, &["--from", "earliest"], 60_000).await;
    held.kill().expect("kill -9"); // SIGKILL
    let _ = held.wait();
    assert_eq!(current_rows(&p.db.pool).await.expect("rows"), before, "a killed backfill changed rows");
    eventually("the aggregator to own every partition after the kill", LONG, || async {
        (metric(port, "tradeflow_aggregator_partitions_owned").await? == 12
            && metric(port, "tradeflow_aggregator_rebuilt_reloads_total").await? >= 1)
            .then_some(())
    })
    .await;

    // Killed after writing one partition (partitions are written in order, 0 first).
    let out = backfill(&p, &["--from", "earliest"], &[("TRADEFLOW_BACKFILL_FAULT", "crash-after:1")]);
    assert!(!out.status.success(), "{}", text(&out));
    let after = current_rows(&p.db.pool).await.expect("rows");
    let partition_of: BTreeMap<SummaryKey, i32> =
        sqlx::query_as::<_, (chrono::NaiveDate, String, String, String, i32)>(
            "SELECT trade_date, client_id, account_id, symbol, source_partition FROM summary_current",
        )
        .fetch_all(&p.db.pool)
        .await
        .expect("partitions")
        .into_iter()
        .map(|(d, c, a, s, p)| {
            (
                SummaryKey {
                    trade_date: d,
                    client_id: ClientId::parse(&c).expect("client"),
                    account_id: a.into(),
                    symbol: s.into(),
                },
                p,
            )
        })
        .collect();
    for (key, position) in &after {
        let p0 = partition_of[key] == 0;
        let expected = if p0 { before[key].trade_count - 1000 } else { before[key].trade_count };
        assert_eq!(
            position.trade_count, expected,
            "{key:?} (partition {}): written whole or left intact",
            partition_of[key]
        );
    }
    // The leases lapse (3 s): the live aggregator takes its partitions back and goes on.
    eventually("the aggregator owns every partition again", LONG, || async {
        (metric(port, "tradeflow_aggregator_partitions_owned").await? == 12).then_some(())
    })
    .await;
    // A second run completes: everything equals the oracle.
    let out = backfill(&p, &["--from", "earliest"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    p.converges().await;
    p.cleanup();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_backfills_at_once_are_refused_not_interleaved() {
    let p = Pipeline::new().await;
    p.produce(&["--clients", "1,2", "--count", "300", "--seed", "47", "--start", "2026-11-20T09:00:00"]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let _aggregator = p.start("aggregator", harness::broker::free_port());
    p.converges().await;
    // The first holds the backfill lock for 8 s after reading; the second starts meanwhile.
    let first = holding(&p, &["--from", "2026-11-20", "--to", "2026-11-20"], 8_000).await;
    let second = backfill(&p, &["--from", "2026-11-19", "--to", "2026-11-21"], &[]);
    assert!(!second.status.success(), "the second backfill ran alongside: {}", text(&second));
    assert!(text(&second).contains("another backfill of this topic is running"), "{}", text(&second));
    let first = first.wait_with_output().expect("first backfill");
    assert!(first.status.success(), "{}", text(&first));
    p.converges().await;
    p.cleanup();
}

/// Issue #24: a backfill of a past date rebuilds its rows, holdings and fill bars from `trades`,
/// and leaves the other date's alone — all equal to the oracle afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_of_a_past_date_leaves_holdings_and_fill_bars_equal_to_the_oracle() {
    use tradeflow_aggregator::fill_bars::{compare_fill_bars, current_fill_bars};
    use tradeflow_aggregator::holdings::{compare_holdings, current_holdings};
    use tradeflow_core::oracle::Oracle;

    let p = Pipeline::new().await;
    // Two past trade dates (the run crosses midnight), a few minutes of bars on each.
    p.produce(&[
        "--clients",
        "1,2,3",
        "--count",
        "1200",
        "--seed",
        "24",
        "--start",
        "2026-11-20T23:58:30",
        "--rate",
        "8",
    ]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let _aggregator = p.start("aggregator", harness::broker::free_port());
    p.converges().await;
    let oracle = Oracle::from_dir(&p.logs).expect("oracle");
    let dates: Vec<chrono::NaiveDate> = oracle.fill_bars.keys().map(|k| k.trade_date).collect();
    let (first, last) = (dates[0], dates[dates.len() - 1]);
    assert!(first < last, "the run crosses midnight");
    // Wrong holdings and bars on the first date, as a bug would leave them: a doubled row, a bar
    // lost, a bar changed, a bar that never was.
    for sql in [
        "UPDATE summary_current SET buy_qty = buy_qty * 2, trade_count = trade_count * 2 WHERE trade_date = $1",
        "DELETE FROM fill_bars WHERE (trade_date, client_id, account_id, symbol, minute) IN
             (SELECT trade_date, client_id, account_id, symbol, minute FROM fill_bars WHERE trade_date = $1 LIMIT 1)",
        "UPDATE fill_bars SET sell_qty = sell_qty + 5 WHERE trade_date = $1",
        "INSERT INTO fill_bars SELECT trade_date, client_id, account_id, symbol, minute - interval '1 hour', 1, 1, 0,
             1, 0, source_partition FROM fill_bars WHERE trade_date = $1 LIMIT 1",
    ] {
        sqlx::query(sql).bind(first).execute(&p.db.pool).await.expect("corrupt");
    }
    let held = current_holdings(&p.db.pool).await.expect("holdings");
    assert!(!compare_holdings(&held, &oracle).is_empty(), "the corruption shows in holdings");
    let bars = current_fill_bars(&p.db.pool).await.expect("bars");
    let wrong = compare_fill_bars(&bars, &oracle);
    assert!(wrong.iter().all(|d| format!("{d}").contains(&first.to_string())), "only the first date is wrong");
    assert!(wrong.len() >= 3, "{wrong:?}");
    let last_date_bars: Vec<_> = bars.bars.iter().filter(|((k, _), _)| k.trade_date == last).collect();

    // The rows carry marks, as the live aggregators write them from `prices`.
    sqlx::query("UPDATE summary_current SET mark_price = 123.45, mark_at = now()")
        .execute(&p.db.pool)
        .await
        .expect("marks");

    let day = first.to_string();
    let out = backfill(&p, &["--from", &day, "--to", &day], &[]);
    assert!(out.status.success(), "{}", text(&out));
    // Rows, realized P&L, holdings and fill bars equal the oracle again (and `tradeflow verify` says so).
    p.converges().await;
    // The rebuilt rows keep their symbols' marks (a rebuild reads `trades`, not `prices`): their P&L
    // is not wiped.
    let unmarked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM summary_current WHERE trade_date = $1 AND mark_price IS DISTINCT FROM 123.45",
    )
    .bind(first)
    .fetch_one(&p.db.pool)
    .await
    .expect("marks after");
    assert_eq!(unmarked, 0, "every rebuilt row keeps its symbol's newest mark");
    let after = current_fill_bars(&p.db.pool).await.expect("bars");
    let last_after: Vec<_> = after.bars.iter().filter(|((k, _), _)| k.trade_date == last).collect();
    assert_eq!(last_after, last_date_bars, "the other date's bars are as they were");

    // GET /api/fill-bars serves them: client 1's bars of the rebuilt date, with the oracle's VWAP.
    let dash = Dash::start_on(p.topics.clone(), &[], &[("DATABASE_URL", p.db.url.clone())]).await;
    let (token, port) = (dash.token("1"), dash.port);
    let get = |path: String| async move { harness::http::request(port, &path, &[]).await.expect("answer") };
    let (status, body) = get(format!("/api/fill-bars?client=1&date={day}&token={token}")).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!((answer["client"].as_str(), answer["trade_date"].as_str()), (Some("1"), Some(day.as_str())));
    type Bar = (String, String, String, i64, Option<rust_decimal::Decimal>);
    let served: Vec<Bar> = answer["bars"]
        .as_array()
        .expect("bars")
        .iter()
        .map(|b| {
            let s = |f: &str| b[f].as_str().unwrap_or_default().to_owned();
            let vwap = b["vwap"].as_str().map(|v| v.parse().expect("vwap"));
            (s("account_id"), s("symbol"), s("minute"), b["trade_count"].as_i64().unwrap_or(-1), vwap)
        })
        .collect();
    let expected: Vec<Bar> = oracle
        .fill_bars
        .iter()
        .filter(|(k, _)| k.client_id.as_str() == "1" && k.trade_date == first)
        .flat_map(|(k, bars)| {
            bars.iter().map(move |(m, b)| {
                let minute = m.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                (k.account_id.to_string(), k.symbol.to_string(), minute, b.trade_count, b.vwap())
            })
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(served, expected);
    // The token rules and the edge: another client's token, none, a bad date, an unknown parameter.
    assert_eq!(get(format!("/api/fill-bars?client=2&date={day}&token={token}")).await.0, 403);
    assert_eq!(get(format!("/api/fill-bars?client=1&date={day}")).await.0, 401);
    assert_eq!(get(format!("/api/fill-bars?client=1&date=2026-02-30&token={token}")).await.0, 400);
    assert_eq!(get(format!("/api/fill-bars?client=1&minute=1&token={token}")).await.0, 400);
    let (status, body) = get(format!("/api/fill-bars?client=1&date=2026-01-01&token={token}")).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).expect("json")["bars"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    p.cleanup();
}
