//! Minute price bars: ticks on `prices` end in Postgres `price_bars` as exactly the fold of the
//! ticks sent (each counted once across a kill -9 of the aggregator), served by `/api/bars` and the
//! websocket `bars` view, and dropped by retention with the rest of the history.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row as _;
use tradeflow_core::bars::{Bar, fold, minute_of};
use tradeflow_core::price::PriceTick;

use crate::aggregator::Pipeline;
use crate::dashboard::Dash;
use crate::harness::broker::free_port;
use crate::harness::http::{metric, request};
use crate::harness::{self, eventually};

const LONG: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);

/// The stored bars: (symbol, minute) → (open, high, low, close, ticks).
type Stored = BTreeMap<(String, DateTime<Utc>), (Decimal, Decimal, Decimal, Decimal, i64)>;

async fn stored(pool: &sqlx::PgPool) -> Option<Stored> {
    let rows = sqlx::query("SELECT symbol, minute, open, high, low, close, ticks FROM price_bars")
        .fetch_all(pool)
        .await
        .ok()?;
    let mut out = Stored::new();
    for r in rows {
        out.insert(
            (r.get("symbol"), r.get("minute")),
            (r.get("open"), r.get("high"), r.get("low"), r.get("close"), r.get("ticks")),
        );
    }
    Some(out)
}

fn expected(ticks: &[PriceTick]) -> Stored {
    fold(ticks).into_iter().map(|((s, m), b)| ((s.to_string(), m), (b.open, b.high, b.low, b.close, b.ticks))).collect()
}

/// A bar as the REST answer and the websocket frames show it.
fn shown(b: &Bar) -> Value {
    serde_json::to_value(b).expect("bar json")
}

/// `n` ticks over three symbols, dated within today up to now and out of order (so the open is
/// not the first tick read), prices with up to 8 places.
fn ticks(n: usize, now: DateTime<Utc>, salt: usize) -> Vec<PriceTick> {
    let today = now.date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let base = (minute_of(now) - TimeDelta::minutes(4)).max(today);
    let span = (now - base).num_milliseconds().max(1);
    (0..n)
        .map(|i| {
            let k = i + salt;
            let at = base + TimeDelta::milliseconds((k as i64 * 7_919_311) % span);
            let price = Decimal::new(10_000_000_000 + ((k * 104_729) % 900_000_000) as i64, 8);
            PriceTick { symbol: ["AAPL", "MSFT", "TSLA"][k % 3].into(), price, at }
        })
        .collect()
}

#[tokio::test]
async fn price_bars_are_the_fold_of_the_ticks_once_across_a_kill_9_and_are_served_by_rest_and_ws() {
    let p = Pipeline::new().await;
    let dash = Dash::start_on(p.topics.clone(), &["--database-url", &p.db.url], &[]).await;
    let port = free_port();
    let mut aggregator = p.start_with("aggregator", port, &[("TRADEFLOW_BARS_FLUSH_MS", "100")]);
    let now = Utc::now();
    let mut sent = ticks(300, now, 0);
    for t in &sent {
        dash.tick_at(&t.symbol, &t.price.to_string(), t.at).await;
    }
    // Mid-stream: some bars written, then kill -9 and a restart while more ticks arrive.
    eventually("the bar writer to write", LONG, || async {
        metric(port, "tradeflow_aggregator_bar_ticks_total").await.filter(|&n| n > 0)
    })
    .await;
    aggregator.kill9();
    let second = ticks(300, now, 300);
    for t in &second[..150] {
        dash.tick_at(&t.symbol, &t.price.to_string(), t.at).await;
    }
    let port = free_port();
    let _aggregator = p.start_with("aggregator", port, &[("TRADEFLOW_BARS_FLUSH_MS", "100")]);
    for t in &second[150..] {
        dash.tick_at(&t.symbol, &t.price.to_string(), t.at).await;
    }
    sent.extend(second);
    // A refused tick (negative price): counted, skipped, and the partition goes on.
    dash.tick_at("AAPL", "-1", now).await;
    let late = PriceTick { symbol: "AAPL".into(), price: "123.45".parse().expect("price"), at: now };
    dash.tick_at(&late.symbol, "123.45", late.at).await;
    sent.push(late);
    let want = expected(&sent);
    let got = eventually("price_bars to equal the fold of the ticks sent", LONG, || async {
        stored(&p.db.pool).await.filter(|s| *s == want)
    })
    .await;
    assert_eq!(got.values().map(|b| b.4).sum::<i64>(), 601, "every tick once: none lost, none doubled");
    eventually("the refused tick counted", WAIT, || async {
        metric(port, "tradeflow_aggregator_bar_ticks_refused_total").await.filter(|&n| n >= 1)
    })
    .await;

    // REST: the bars of one symbol, ascending, exactly as folded; bad input and no token refused.
    let token = dash.token("7");
    let aapl: Vec<Value> = fold(&sent).values().filter(|b| b.symbol == "AAPL").map(shown).collect();
    let from = (minute_of(now) - TimeDelta::minutes(10)).to_rfc3339().replace('+', "%2B");
    let (status, body) =
        request(dash.port, &format!("/api/bars?symbol=AAPL&from={from}&token={token}"), &[]).await.expect("rest");
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["symbol"], "AAPL");
    assert_eq!(answer["bars"].as_array().expect("bars"), &aapl);
    let (status, _) = request(dash.port, "/api/bars?symbol=AAPL", &[]).await.expect("rest");
    assert_eq!(status, 401, "a token is required");
    for bad in ["from=yesterday", "from=2026-01-01T00:00:00Z&to=2026-01-09T00:00:00Z", "symbol=", "nope=1"] {
        let q = if bad.starts_with("symbol") { bad.to_owned() } else { format!("symbol=AAPL&{bad}") };
        let (status, body) = request(dash.port, &format!("/api/bars?{q}&token={token}"), &[]).await.expect("rest");
        assert_eq!(status, 400, "{q}: {body}");
    }

    // Websocket: today's bars as a snapshot, then the bar each tick changes.
    let mut ws = dash.connect("7").await;
    let today = now.date_naive();
    let msft: Vec<Value> =
        fold(&sent).values().filter(|b| b.symbol == "MSFT" && b.trade_date() == today).map(shown).collect();
    // The dashboard reads the ticks on its own: subscribe again until it has read them all.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        ws.send(json!({"op": "subscribe", "client": "7", "view": "bars", "symbol": "MSFT"})).await;
        let snapshot = loop {
            let f = ws.expect("bars", WAIT).await;
            if f["snapshot"] == true {
                break f;
            }
        };
        assert_eq!(snapshot["symbol"], "MSFT");
        if snapshot["bars"].as_array() == Some(&msft) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the bars snapshot never equalled the fold: {snapshot}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let next = PriceTick { symbol: "MSFT".into(), price: "99.5".parse().expect("price"), at: Utc::now() };
    dash.tick_at("AAPL", "1", next.at).await; // another symbol: no frame for this subscriber
    dash.tick_at("MSFT", "99.5", next.at).await;
    sent.push(next.clone());
    let bar = fold(sent.iter().filter(|t| t.symbol == "MSFT"))
        .remove(&("MSFT".into(), minute_of(next.at)))
        .expect("the changed bar");
    let want = json!([shown(&bar)]);
    // (A change read between subscribing and the snapshot may come again first: whole bars, harmless.)
    let frames = ws.collect_until(WAIT, |f| f.last().is_some_and(|f| f["bars"] == want)).await;
    assert!(
        frames.iter().all(|f| f["type"] == "bars" && f["symbol"] == "MSFT" && f["snapshot"] == false),
        "{frames:?}"
    );
    ws.send(json!({"op": "subscribe", "client": "8", "view": "bars", "symbol": "MSFT"})).await;
    assert_eq!(ws.expect("error", WAIT).await["code"], "forbidden", "another client's subscription");
    p.cleanup();
}

#[tokio::test]
async fn retention_drops_old_price_bar_partitions_and_keeps_the_recent_ones() {
    let p = Pipeline::new().await;
    let dash = Dash::start_on(p.topics.clone(), &[], &[]).await;
    let _aggregator = p.start_with("aggregator", free_port(), &[("TRADEFLOW_BARS_FLUSH_MS", "100")]);
    let now = Utc::now();
    let old = now - TimeDelta::days(20);
    dash.tick_at("AAPL", "10", old).await;
    dash.tick_at("AAPL", "11", now).await;
    let count = |date: NaiveDate| {
        let pool = p.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM price_bars WHERE trade_date = $1")
                .bind(date)
                .fetch_one(&pool)
                .await
                .ok()
        }
    };
    eventually("both bars stored", LONG, || async {
        (count(old.date_naive()).await == Some(1) && count(now.date_naive()).await == Some(1)).then_some(())
    })
    .await;
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["history", "--history-days", "9"])
        .env("DATABASE_URL", &p.db.url)
        .output()
        .expect("history");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("dropped bars\t{}", old.date_naive())), "{stdout}");
    let partition = format!("price_bars_{}", old.format("%Y%m%d"));
    let exists: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = $1")
        .bind(&partition)
        .fetch_one(&p.db.pool)
        .await
        .expect("pg_class");
    assert_eq!(exists, 0, "{partition} dropped");
    assert_eq!(count(old.date_naive()).await, Some(0));
    assert_eq!(count(now.date_naive()).await, Some(1), "today's bar kept");
    p.cleanup();
}
