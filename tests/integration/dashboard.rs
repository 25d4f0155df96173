//! Dashboard: the websocket protocol, access control and slow subscribers, against a real broker.
//! Changes are published straight onto the test's `summaries` / `prices` topics (what the
//! aggregator and the price feed write), so each test controls every version and sequence number.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tradeflow_core::ClientId;
use tradeflow_core::changelog::SummaryChange;
use tradeflow_core::price::PriceTick;
use tradeflow_core::summary::{Position, SummaryKey};
use tradeflow_dashboard::token::TokenKey;

use crate::harness::broker::free_port;
use crate::harness::http::{labelled, metric, request};
use crate::harness::ws::{WsClient, refused_status};
use crate::harness::{self, Service, TestDatabase, TestTopics, eventually};

pub(crate) const SECRET: &str = "integration-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(30);

pub struct Dash {
    pub topics: TestTopics,
    pub root: PathBuf,
    pub port: u16,
    key: TokenKey,
    producer: FutureProducer,
    pub service: Service,
}

impl Dash {
    pub async fn start(extra: &[&str]) -> Self {
        let topics = TestTopics::shared().await;
        Self::start_on(topics, extra, &[]).await
    }

    pub async fn start_on(topics: TestTopics, extra: &[&str], env: &[(&'static str, String)]) -> Self {
        let root = harness::temp_dir();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["dashboard", "--listen", &listen];
        args.extend_from_slice(extra);
        let mut envs = vec![
            ("KAFKA_BROKERS", topics.kafka.brokers.clone()),
            ("TRADEFLOW_TOPIC_PREFIX", topics.prefix.clone()),
            ("TRADEFLOW_AUTH_SECRET", SECRET.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        envs.extend_from_slice(env);
        let service = Service::start("dashboard", &args, &envs, &root);
        let producer = topics.kafka.client_config().set("linger.ms", "0").create().expect("producer");
        let dash = Self { topics, root, port, key: TokenKey::new(SECRET).expect("key"), producer, service };
        eventually("the dashboard to be ready", WAIT, || async {
            request(dash.port, "/readyz", &[]).await.filter(|(status, _)| *status == 200).map(|_| ())
        })
        .await;
        dash
    }

    pub fn token(&self, client: &str) -> String {
        self.key.sign(&ClientId::parse(client).expect("client"), Utc::now().timestamp() + 3600)
    }

    /// Publishes a version of row (client, account, symbol) with `count` trades of 10 shares at 100.
    pub async fn change(&self, client: &str, account: &str, symbol: &str, count: i64, offset: i64) {
        let at = NaiveDate::from_ymd_opt(2026, 11, 23).and_then(|d| d.and_hms_opt(9, 30, 0)).expect("time");
        let key = SummaryKey {
            trade_date: at.date(),
            client_id: ClientId::parse(client).expect("client"),
            account_id: account.into(),
            symbol: symbol.into(),
        };
        let position = Position {
            trade_count: count,
            buy_qty: 10 * count,
            sell_qty: 0,
            buy_notional: Decimal::from(1000 * count),
            sell_notional: Decimal::ZERO,
            last_price: Decimal::from(100),
            first_trade_at: at,
            last_trade_at: at,
        };
        self.publish(&key, &position, offset).await;
    }

    /// Publishes the row `key` with `position` at `offset` (partition 0).
    pub async fn publish(&self, key: &SummaryKey, position: &Position, offset: i64) {
        let change = SummaryChange::new(key, position, None, 0, offset);
        let k = key.kafka_key();
        let payload = change.to_json();
        self.producer
            .send(FutureRecord::to(&self.topics.topics.summaries).key(&k).payload(&payload), Duration::from_secs(10))
            .await
            .expect("publish summary change");
    }

    pub async fn tick(&self, symbol: &str, price: &str) {
        self.tick_at(symbol, price, Utc::now()).await
    }

    /// A tick dated `at`.
    pub async fn tick_at(&self, symbol: &str, price: &str, at: chrono::DateTime<Utc>) {
        let tick = PriceTick { symbol: symbol.into(), price: price.parse().expect("price"), at };
        let payload = tick.to_json();
        self.producer
            .send(FutureRecord::to(&self.topics.topics.prices).key(symbol).payload(&payload), Duration::from_secs(10))
            .await
            .expect("publish tick");
    }

    pub async fn connect(&self, client: &str) -> WsClient {
        let mut ws = WsClient::connect(self.port, Some(&self.token(client)), None).await.expect("connect");
        let hello = ws.expect("hello", WAIT).await;
        assert_eq!(hello["client"], client);
        ws
    }

    /// The live rows over REST (with the client's token).
    pub async fn rest(&self, client: &str) -> Value {
        let (status, body) =
            request(self.port, &format!("/api/summary?client={client}&token={}", self.token(client)), &[])
                .await
                .expect("rest");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("json")
    }

    /// Waits until the client's feed is at `seq` (every published change applied).
    pub async fn at_seq(&self, client: &str, seq: u64) {
        eventually(&format!("client {client} at seq {seq}"), WAIT, || async {
            (self.rest(client).await["seq"] == seq).then_some(())
        })
        .await;
    }
}

fn rows(frame: &Value) -> &[Value] {
    frame["rows"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn count_of(frame: &Value, symbol: &str) -> Option<i64> {
    rows(frame).iter().find(|r| r["symbol"] == symbol).and_then(|r| r["trade_count"].as_i64())
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_snapshot_then_ordered_deltas_shared_views_ticks_and_tail() {
    let d = Dash::start(&[]).await;
    d.change("A", "ACC1", "AAPL", 1, 1).await;
    d.change("A", "ACC1", "MSFT", 1, 2).await;
    d.change("B", "ACC9", "AAPL", 1, 3).await;
    d.at_seq("A", 2).await;

    let subscribe = json!({"op": "subscribe", "client": "A"});
    let mut one = d.connect("A").await;
    one.send(subscribe.clone()).await;
    let snap1 = one.expect("snapshot", WAIT).await;
    let mut two = d.connect("A").await;
    two.send(subscribe.clone()).await;
    let snap2 = two.expect("snapshot", WAIT).await;
    assert_eq!((snap1["seq"].as_u64(), snap2["seq"].as_u64()), (Some(2), Some(2)));
    assert_eq!(rows(&snap1).len(), 2, "client A has two rows: {snap1}");
    assert!(rows(&snap1).iter().all(|r| r["client_id"] == "A"));
    assert_eq!(snap1["rows"], snap2["rows"]);

    let mut msft_only = d.connect("A").await;
    msft_only.send(json!({"op": "subscribe", "client": "A", "symbol": "MSFT"})).await;
    assert_eq!(rows(&msft_only.expect("snapshot", WAIT).await).len(), 1);
    let mut by_symbol = d.connect("A").await;
    by_symbol.send(json!({"op": "subscribe", "client": "A", "view": "totals_by_symbol"})).await;
    let view = by_symbol.expect("view", WAIT).await;
    assert_eq!(view["snapshot"], true);
    assert_eq!(
        rows(&view).iter().map(|t| t["group"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        ["AAPL", "MSFT"]
    );

    for count in 2..=11 {
        d.change("A", "ACC1", "AAPL", count, 8 + count).await;
    }
    let done = |frames: &[Value]| frames.last().and_then(|f| count_of(f, "AAPL")) == Some(11);
    let f1 = one.collect_until(WAIT, done).await;
    let f2 = two.collect_until(WAIT, done).await;
    for frames in [&f1, &f2] {
        let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > 2, "sequence numbers increase: {seqs:?}");
        let counts: Vec<i64> = frames.iter().filter_map(|f| count_of(f, "AAPL")).collect();
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "row versions arrive in order: {counts:?}");
        assert!(frames.iter().all(|f| f["type"] == "delta" && rows(f).iter().all(|r| r["client_id"] == "A")));
        assert_eq!(frames.last().and_then(|f| f["seq"].as_u64()), Some(12));
    }
    // One fan-out: the same sequence number means the same rows for both subscribers.
    for a in &f1 {
        if let Some(b) = f2.iter().find(|b| b["seq"] == a["seq"]) {
            assert_eq!(a["rows"], b["rows"]);
        }
    }

    // The filtered subscriber saw none of that; a MSFT change reaches it.
    d.change("A", "ACC1", "MSFT", 2, 30).await;
    let delta = msft_only.expect("delta", WAIT).await;
    assert_eq!(rows(&delta).len(), 1);
    assert_eq!(count_of(&delta, "MSFT"), Some(2), "the filtered subscriber's first delta is the MSFT change: {delta}");

    // The view follows: a second account's AAPL row adds to the AAPL group.
    d.change("A", "ACC2", "AAPL", 3, 31).await;
    let update = loop {
        let f = by_symbol.expect("view", WAIT).await;
        if rows(&f).iter().any(|t| t["group"] == "AAPL" && t["rows"] == 2) {
            break f;
        }
    };
    let aapl = rows(&update).iter().find(|t| t["group"] == "AAPL").cloned().unwrap_or_default();
    assert_eq!((aapl["trade_count"].as_i64(), aapl["buy_qty"].as_i64()), (Some(14), Some(140)), "{aapl}");
    assert_eq!(update["snapshot"], false);

    // A price tick moves every row of its symbol: market value = net qty × mark.
    d.tick("AAPL", "200.50").await;
    let marked = one
        .collect_until(WAIT, |f| {
            f.last().is_some_and(|f| rows(f).iter().any(|r| r["symbol"] == "AAPL" && r["mark_price"] == "200.50"))
        })
        .await;
    let row = rows(marked.last().expect("frame"))
        .iter()
        .find(|r| r["symbol"] == "AAPL" && r["account_id"] == "ACC1")
        .cloned()
        .expect("ACC1 AAPL row");
    assert_eq!(row["net_qty"], 110);
    assert_eq!(row["market_value"], "22055.00");
    assert_eq!(row["mark_stale"], false);
    // …and its P&L with it (docs/pnl.md): nothing sold, so nothing realized; 0 − 11000 + 110 × 200.50.
    assert_eq!(
        (&row["realized_pnl"], &row["unrealized_pnl"], &row["total_pnl"]),
        (&"0".into(), &"11055.00".into(), &"11055.00".into()),
        "{row}"
    );

    // An older version of a row than the one held is ignored.
    d.change("A", "ACC1", "AAPL", 5, 15).await;
    eventually("the stale version to be counted", WAIT, || async {
        metric(d.port, "tradeflow_dashboard_stale_versions_total").await.filter(|n| *n >= 1)
    })
    .await;
    let live = d.rest("A").await;
    let aapl = live["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["symbol"] == "AAPL" && r["account_id"] == "ACC1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(aapl["trade_count"], 11);
    assert_eq!(metric(d.port, "tradeflow_dashboard_subscribers").await, Some(4));
    // Every summary read has its age observed (read first: both only grow).
    let read = metric(d.port, "tradeflow_dashboard_summaries_total").await.unwrap_or(0);
    let ages = metric(d.port, "tradeflow_dashboard_summary_age_seconds_count").await.unwrap_or(0);
    assert!(read >= 1 && ages >= read, "summary ages {ages} vs summaries read {read}");
    // Every delta frame written has its fan-out time observed (snapshots and hello frames are not).
    eventually("a fan-out time observed", WAIT, || async {
        metric(d.port, "tradeflow_dashboard_fanout_seconds_count").await.filter(|n| *n >= 1)
    })
    .await;

    // The terminal tail speaks the same protocol.
    let url = format!("ws://127.0.0.1:{}/ws", d.port);
    let tail = |view: &str| {
        let out = std::process::Command::new(harness::tradeflow_bin())
            .args(["tail", "--client", "A", "--frames", "2", "--view", view, "--url", &url, "--token", &d.token("A")])
            .output()
            .expect("run tail");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let stdout = tail("rows");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("hello auth=true client=A"), "{stdout}");
    assert!(lines[1].contains("snapshot client=A") && lines[1].contains("ACC1 AAPL n=11 net=110"), "{stdout}");
    let stdout = tail("totals_by_account");
    assert!(stdout.contains("view totals_by_account") && stdout.contains("ACC2 rows=1 n=3"), "{stdout}");
    let _ = std::fs::remove_dir_all(&d.root);
}

/// The `positions` view (docs/pnl.md#holdings): one holding per account and symbol across the
/// client's dates, valued at the newest mark, updated by trades and ticks; also on REST and `tail`.
#[tokio::test]
async fn positions_view_holds_across_dates_and_moves_with_the_mark() {
    let d = Dash::start(&[]).await;
    let at = |day: u32| NaiveDate::from_ymd_opt(2026, 11, day).and_then(|d| d.and_hms_opt(9, 30, 0)).expect("time");
    let key = |day: u32| SummaryKey {
        trade_date: at(day).date(),
        client_id: ClientId::parse("P").expect("client"),
        account_id: "ACC1".into(),
        symbol: "AAPL".into(),
    };
    let book = |day: u32, bq: i64, bn: i64, sq: i64, sn: i64| Position {
        trade_count: 1,
        buy_qty: bq,
        sell_qty: sq,
        buy_notional: Decimal::from(bn),
        sell_notional: Decimal::from(sn),
        last_price: Decimal::from(100),
        first_trade_at: at(day),
        last_trade_at: at(day),
    };
    // Day 1: bought 20 for 2000 (average 100). Day 2: sold 5 for 550.
    d.publish(&key(23), &book(23, 20, 2000, 0, 0), 1).await;
    d.publish(&key(24), &book(24, 0, 0, 5, 550), 2).await;
    d.at_seq("P", 2).await;
    let mut ws = d.connect("P").await;
    ws.send(json!({"op": "subscribe", "client": "P", "view": "positions"})).await;
    let snapshot = ws.expect("view", WAIT).await;
    assert_eq!((&snapshot["view"], &snapshot["snapshot"]), (&json!("positions"), &json!(true)), "{snapshot}");
    let held = rows(&snapshot);
    assert_eq!(held.len(), 1, "{snapshot}");
    let h = &held[0];
    assert_eq!(
        (&h["position"], &h["first_trade_date"], &h["last_trade_date"]),
        (&json!(15), &json!("2026-11-23"), &json!("2026-11-24"))
    );
    assert_eq!(Decimal::from_str_exact(h["avg_cost"].as_str().expect("avg")).ok(), Some(Decimal::from(100)));
    // Realized: 5 matched × (110 − 100); no mark yet, so no mark-to-market figures.
    assert_eq!(Decimal::from_str_exact(h["realized_pnl"].as_str().expect("realized")).ok(), Some(Decimal::from(50)));
    assert_eq!((&h["market_value"], &h["total_pnl"]), (&Value::Null, &Value::Null));
    // A tick values the holding: 550 − 2000 + 15 × 120 = 350, of which 300 unrealized.
    d.tick("AAPL", "120").await;
    let update = loop {
        let f = ws.expect("view", WAIT).await;
        if rows(&f).iter().any(|h| h["mark_price"] == "120") {
            break f;
        }
    };
    assert_eq!(update["snapshot"], false);
    let h = &rows(&update)[0];
    assert_eq!((&h["market_value"], &h["total_pnl"]), (&json!("1800"), &json!("350")), "{h}");
    assert_eq!(
        Decimal::from_str_exact(h["unrealized_pnl"].as_str().expect("unrealized")).ok(),
        Some(Decimal::from(300))
    );
    // Day P&L today: the 15 held since 2026-11-24 need a day-open mark, and without a database
    // there is none — null, not a guess (docs/pnl.md#day-pl).
    assert_eq!((&h["open_position"], &h["day_open_mark"], &h["day_pnl"]), (&json!(15), &Value::Null, &Value::Null));
    assert_eq!(h["day"], json!(Utc::now().date_naive().to_string()), "{h}");
    // REST carries the same holding beside the rows.
    let rest = d.rest("P").await;
    assert_eq!(rest["positions"][0]["position"], 15, "{rest}");
    assert_eq!(rest["positions"][0]["total_pnl"], "350", "{rest}");
    // And `tradeflow tail --view positions` prints it.
    let url = format!("ws://127.0.0.1:{}/ws", d.port);
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args([
            "tail",
            "--client",
            "P",
            "--frames",
            "2",
            "--view",
            "positions",
            "--url",
            &url,
            "--token",
            &d.token("P"),
        ])
        .output()
        .expect("run tail");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && stdout.contains("view positions") && stdout.contains("ACC1 AAPL pos=15"),
        "{stdout}"
    );
    assert!(stdout.contains("pnl=350 open=- dpnl=-"), "{stdout}");
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_resume_replays_exactly_the_missed_deltas_or_sends_a_snapshot() {
    let d = Dash::start(&["--resume-window", "8"]).await;
    let mut ws = d.connect("R").await;
    ws.send(json!({"op": "subscribe", "client": "R"})).await;
    let snapshot = ws.expect("snapshot", WAIT).await;
    assert_eq!(snapshot["seq"], 0);
    let epoch = snapshot["epoch"].as_str().expect("epoch").to_owned();
    d.change("R", "ACC1", "AAPL", 1, 1).await;
    assert_eq!(ws.expect("delta", WAIT).await["seq"], 1);
    drop(ws);

    // Missed while away: five versions of two rows.
    let missed = [("AAPL", 2), ("MSFT", 1), ("AAPL", 3), ("MSFT", 2), ("AAPL", 4)];
    for (i, (symbol, count)) in missed.iter().enumerate() {
        d.change("R", "ACC1", symbol, *count, 10 + i as i64).await;
    }
    d.at_seq("R", 6).await;
    let mut ws = d.connect("R").await;
    ws.send(json!({"op": "subscribe", "client": "R", "epoch": epoch, "since": 1})).await;
    let resumed = ws.next(WAIT).await.expect("frame");
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(
        (resumed["since"].as_u64(), resumed["seq"].as_u64(), resumed["replayed"].as_u64()),
        (Some(1), Some(6), Some(5))
    );
    // Exactly the five missed deltas, in sequence. (Rows live on different `summaries` partitions,
    // so the two rows' changes interleave in any order; each row's versions stay in order.)
    let mut replayed: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for i in 0..missed.len() {
        let delta = ws.next(WAIT).await.expect("replayed delta");
        assert_eq!(delta["type"], "delta");
        assert_eq!(delta["seq"], 2 + i as u64, "{delta}");
        assert_eq!(rows(&delta).len(), 1);
        let row = &rows(&delta)[0];
        replayed
            .entry(row["symbol"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(row["trade_count"].as_i64().unwrap_or_default());
    }
    assert_eq!(replayed, [("AAPL".to_owned(), vec![2, 3, 4]), ("MSFT".to_owned(), vec![1, 2])].into());
    // And then live deltas continue the sequence.
    d.change("R", "ACC1", "AAPL", 5, 20).await;
    assert_eq!(ws.expect("delta", WAIT).await["seq"], 7);
    drop(ws);

    // Too far back (the window holds 8 deltas): a fresh snapshot, never a gap.
    for count in 6..16 {
        d.change("R", "ACC1", "AAPL", count, 15 + count).await;
    }
    d.at_seq("R", 17).await;
    let mut ws = d.connect("R").await;
    ws.send(json!({"op": "subscribe", "client": "R", "epoch": epoch, "since": 7})).await;
    let snap = ws.next(WAIT).await.expect("frame");
    assert_eq!((snap["type"].as_str(), snap["seq"].as_u64()), (Some("snapshot"), Some(17)), "{snap}");
    assert_eq!(count_of(&snap, "AAPL"), Some(15));
    // Another instance's (or an earlier run's) sequence numbers: a snapshot too.
    ws.send(json!({"op": "subscribe", "client": "R", "epoch": "0000000000000000", "since": 17})).await;
    assert_eq!(ws.next(WAIT).await.expect("frame")["type"], "snapshot");
    assert_eq!(metric(d.port, "tradeflow_dashboard_resumes_total").await, Some(1));
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_access_control_and_bad_requests() {
    let d = Dash::start(&["--allowed-origins", "https://desk.example"]).await;
    d.change("A", "ACC1", "AAPL", 1, 1).await;
    d.change("B", "ACC1", "AAPL", 1, 2).await;
    d.at_seq("B", 1).await;
    let (a, port) = (d.token("A"), d.port);

    // Websocket handshakes.
    let status = |r: Result<WsClient, _>| r.err().as_ref().and_then(refused_status);
    assert_eq!(status(WsClient::connect(port, None, None).await), Some(401), "no token");
    assert_eq!(
        status(WsClient::connect(port, Some(&a.replacen("tf1.A.", "tf1.B.", 1)), None).await),
        Some(401),
        "forged token"
    );
    assert_eq!(status(WsClient::connect(port, Some("garbage"), None).await), Some(401), "malformed token");
    assert_eq!(
        status(WsClient::connect(port, Some(&a), Some("http://evil.example")).await),
        Some(403),
        "foreign origin"
    );
    assert!(WsClient::connect(port, Some(&a), Some(&format!("http://127.0.0.1:{port}"))).await.is_ok(), "own origin");
    assert!(WsClient::connect(port, Some(&a), Some("https://desk.example")).await.is_ok(), "allow-listed origin");
    assert_eq!(labelled(port, "tradeflow_dashboard_handshakes_refused_total").await, Some(vec![3, 1]));

    // A's token cannot subscribe to B; the socket stays usable.
    let mut ws = d.connect("A").await;
    ws.send(json!({"op": "subscribe", "client": "B"})).await;
    let e = ws.expect("error", WAIT).await;
    assert_eq!(e["code"], "forbidden", "{e}");
    ws.send_text("{not json".into()).await;
    let e = ws.expect("error", WAIT).await;
    assert_eq!(e["code"], "bad_request");
    assert!(e["message"].as_str().unwrap_or_default().contains("malformed request"), "{e}");
    ws.send(json!({"op": "subscribe", "client": "A", "colour": "red"})).await;
    let e = ws.expect("error", WAIT).await;
    assert!(e["message"].as_str().unwrap_or_default().contains("unknown field `colour`"), "{e}");
    ws.send(json!({"op": "explode"})).await;
    assert_eq!(ws.expect("error", WAIT).await["code"], "bad_request");
    ws.send_text(format!("{{\"op\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(5000))).await;
    let e = ws.expect("error", WAIT).await;
    assert_eq!(e["code"], "too_large", "{e}");
    ws.send(json!({"op": "ping", "id": 7})).await;
    assert_eq!(ws.expect("pong", WAIT).await["id"], 7);
    ws.send(json!({"op": "subscribe", "client": "A"})).await;
    assert_eq!(rows(&ws.expect("snapshot", WAIT).await).len(), 1);
    assert!(metric(port, "tradeflow_dashboard_error_frames_total").await >= Some(5));

    // REST, the same rules.
    let get = |path: String, headers: Vec<String>| async move {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        request(port, &path, &headers).await.expect("answer")
    };
    assert_eq!(get(format!("/api/summary?client=A&token={a}"), vec![]).await.0, 200);
    assert_eq!(get("/api/summary?client=A".into(), vec![format!("authorization: Bearer {a}")]).await.0, 200);
    let (status, body) = get(format!("/api/summary?client=B&token={a}"), vec![]).await;
    assert_eq!(status, 403);
    assert!(body.contains("this token is for client A, not B"), "{body}");
    assert_eq!(get("/api/summary?client=A".into(), vec![]).await.0, 401);
    assert_eq!(get(format!("/api/summary?client=A&as_of=yesterday&token={a}"), vec![]).await.0, 400);
    let (status, body) = get(format!("/api/summary?client=A&as_of=2026-11-23T10:00:00Z&token={a}"), vec![]).await;
    assert_eq!(status, 503, "no database configured: {body}");
    assert_eq!(get(format!("/api/summary?client=A&bogus=1&token={a}"), vec![]).await.0, 400);
    drop(ws);
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_refuses_a_missing_short_or_example_secret_and_init_generates_one() {
    let start = |args: &[&str], secret: Option<&str>| {
        let mut cmd = std::process::Command::new(harness::tradeflow_bin());
        cmd.arg("dashboard").args(["--listen", "127.0.0.1:0"]).args(args).env_remove("TRADEFLOW_AUTH_SECRET");
        cmd.env("KAFKA_BROKERS", crate::harness::Broker::shared());
        if let Some(s) = secret {
            cmd.env("TRADEFLOW_AUTH_SECRET", s);
        }
        let out = cmd.output().expect("tradeflow dashboard");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    for (secret, why) in [
        (None, "no --auth-secret"),
        (Some("too-short"), "at least 16 bytes"),
        (Some("local-only-secret-change-me"), "published example"),
    ] {
        let (ok, stderr) = start(&[], secret);
        assert!(!ok && stderr.contains(why), "{secret:?}: {stderr}");
    }
    // `tradeflow init --auth-secret-file` writes a random secret once (0600) and keeps it after.
    let dir = harness::temp_dir();
    let file = dir.join("secrets/auth-secret");
    let db = TestDatabase::create().await;
    let init = || {
        let out = std::process::Command::new(harness::tradeflow_bin())
            .args(["init", "--auth-secret-file"])
            .arg(&file)
            .env("KAFKA_BROKERS", crate::harness::Broker::shared())
            .env("TRADEFLOW_TOPIC_PREFIX", harness::unique("init") + ".")
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("tradeflow init");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(init().contains("secret generated"));
    let secret = std::fs::read_to_string(&file).expect("secret file");
    assert_eq!(secret.trim().len(), 64, "32 random bytes, hex");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777, 0o600);
    assert!(init().contains("secret kept"));
    assert_eq!(std::fs::read_to_string(&file).expect("secret file"), secret);
    // The token command and the dashboard take it from the file.
    let token = std::process::Command::new(harness::tradeflow_bin())
        .args(["token", "--client", "7", "--auth-secret-file"])
        .arg(&file)
        .env_remove("TRADEFLOW_AUTH_SECRET")
        .output()
        .expect("tradeflow token");
    assert!(token.status.success() && String::from_utf8_lossy(&token.stdout).starts_with("tf1.7."));
    // `tradeflow secrets --dir` (the compose file's first step): three secrets, generated once.
    let secrets = dir.join("volume");
    let run = || {
        let out = std::process::Command::new(harness::tradeflow_bin())
            .args(["secrets", "--dir"])
            .arg(&secrets)
            .output()
            .expect("tradeflow secrets");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(run().matches("generated").count(), 3);
    let before: Vec<String> = ["auth-secret", "postgres-password", "reader-password"]
        .iter()
        .map(|f| std::fs::read_to_string(secrets.join(f)).expect("secret"))
        .collect();
    assert!(before.iter().all(|s| s.trim().len() == 64) && before[0] != before[1] && before[1] != before[2]);
    assert_eq!(run().matches("kept").count(), 3);
    assert_eq!(std::fs::metadata(secrets.join("auth-secret")).expect("meta").permissions().mode() & 0o777, 0o600);
    // A service takes the Postgres password from its file (DATABASE_PASSWORD_FILE).
    let out = std::process::Command::new(harness::tradeflow_bin())
        .arg("history")
        .env("DATABASE_URL", &db.url)
        .env("DATABASE_PASSWORD_FILE", secrets.join("postgres-password"))
        .output()
        .expect("tradeflow history");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let missing = std::process::Command::new(harness::tradeflow_bin())
        .arg("history")
        .env("DATABASE_URL", &db.url)
        .env("DATABASE_PASSWORD_FILE", secrets.join("no-such-file"))
        .output()
        .expect("tradeflow history");
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("--database-password-file"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_from_one_client_is_bounded_and_another_client_is_served_as_usual() {
    let d = Dash::start(&[
        "--max-sockets-per-client",
        "8",
        "--subscribes-per-minute",
        "5",
        "--idle-timeout-secs",
        "2",
        "--rest-per-minute",
        "10",
    ])
    .await;
    let token = d.token("F");
    // Sockets: 8 for client F, then 429s, quickly.
    let started = std::time::Instant::now();
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        match WsClient::connect(d.port, Some(&token), None).await {
            Ok(ws) => flood.push(ws),
            Err(e) => {
                assert_eq!(refused_status(&e), Some(429), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((flood.len(), refused), (8, 32));
    assert!(started.elapsed() < Duration::from_secs(10), "refusals take {:?}", started.elapsed());
    // Subscribes on one socket: 5 a minute, the rest get an error frame; the socket stays open.
    let ws = &mut flood[0];
    ws.expect("hello", WAIT).await;
    for _ in 0..20 {
        ws.send(json!({"op": "subscribe", "client": "F"})).await;
    }
    let frames = ws.collect_until(WAIT, |f| f.iter().filter(|f| f["type"] == "error").count() >= 15).await;
    let limited = frames.iter().filter(|f| f["type"] == "error" && f["code"] == "rate_limited").count();
    assert_eq!(limited, 15, "{frames:?}");
    assert_eq!(frames.iter().filter(|f| f["type"] == "snapshot").count(), 5);
    // Meanwhile another client is served as usual: its change arrives within its normal latency.
    let mut b = d.connect("B").await;
    b.send(json!({"op": "subscribe", "client": "B"})).await;
    b.expect("snapshot", WAIT).await;
    let sent = std::time::Instant::now();
    d.change("B", "CQ01", "AAPL", 1, 1).await;
    let delta = b.expect("delta", WAIT).await;
    assert_eq!(count_of(&delta, "AAPL"), Some(1));
    assert!(sent.elapsed() < Duration::from_secs(2), "B's delta took {:?}", sent.elapsed());
    // A socket that never subscribes is closed after the idle timeout (2 s). The dashboard starts
    // that timer once it has sent the hello, so it is timed from before the connection: from the
    // hello's arrival it may be a little less than 2 s (a CI run on a loaded machine saw so).
    let opened = std::time::Instant::now();
    let mut idle = WsClient::connect(d.port, Some(&d.token("C")), None).await.expect("connect");
    idle.expect("hello", WAIT).await;
    assert!(idle.next(Duration::from_secs(10)).await.is_none(), "the idle socket got a frame");
    let lasted = opened.elapsed();
    assert!(lasted >= Duration::from_secs(2) && lasted < Duration::from_secs(8), "the idle socket lasted {lasted:?}");
    // REST: 10 a minute per client, then 429.
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let path = format!("/api/summary?client=F&token={token}");
        statuses.push(request(d.port, &path, &[]).await.expect("rest").0);
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 5, "{statuses:?}");
    // Every refusal is counted.
    for (name, at_least) in [
        ("tradeflow_dashboard_sockets_refused_total", 32),
        ("tradeflow_dashboard_subscribes_rate_limited_total", 15),
        ("tradeflow_dashboard_idle_closed_total", 1),
        ("tradeflow_dashboard_rest_rate_limited_total", 5),
    ] {
        assert!(metric(d.port, name).await.is_some_and(|n| n >= at_least), "{name}");
    }
    // Sockets closed give their places back.
    drop(flood);
    eventually("a socket for F again", WAIT, || async { WsClient::connect(d.port, Some(&token), None).await.ok() })
        .await;
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_travels_in_a_subprotocol_header_not_the_url() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let d = Dash::start(&[]).await;
    let connect = |token: String| {
        let port = d.port;
        async move {
            let mut request = format!("ws://127.0.0.1:{port}/ws").into_client_request().expect("request");
            request
                .headers_mut()
                .insert("sec-websocket-protocol", format!("tradeflow.v1, {token}").parse().expect("header"));
            tokio_tungstenite::connect_async(request).await
        }
    };
    let (mut ws, response) = connect(d.token("7")).await.expect("a token in the header is accepted");
    assert_eq!(response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some("tradeflow.v1"));
    use futures::StreamExt as _;
    let hello = ws.next().await.expect("hello").expect("frame");
    let hello: Value = serde_json::from_str(hello.to_text().expect("text")).expect("json");
    assert_eq!((hello["type"].as_str(), hello["client"].as_str()), (Some("hello"), Some("7")));
    let forged = format!("{}x", d.token("7"));
    match connect(forged).await {
        Ok(_) => panic!("a forged token was accepted"),
        Err(refused) => assert_eq!(refused_status(&refused), Some(401)),
    }
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_rotated_into_a_key_ring_keeps_old_tokens_working() {
    let (old, new) = ("k1:rotation-test-secret-one", "k2:rotation-test-secret-two");
    // Rotated: the new key first (it signs), the old one kept (it verifies).
    let d = Dash::start(&["--auth-secret", &format!("{new},{old}")]).await;
    let seven = ClientId::parse("7").expect("client");
    let expires = Utc::now().timestamp() + 3600;
    let sign = |spec: &str| TokenKey::new(spec).expect("key").sign(&seven, expires);
    for (which, token) in [("issued before the rotation", sign(old)), ("issued after", sign(&format!("{new},{old}")))] {
        let mut ws = WsClient::connect(d.port, Some(&token), None).await.unwrap_or_else(|e| panic!("{which}: {e}"));
        assert_eq!(ws.expect("hello", WAIT).await["client"], "7", "{which}");
    }
    let retired = WsClient::connect(d.port, Some(&sign("k0:rotation-test-secret-zero")), None).await;
    assert_eq!(retired.err().as_ref().and_then(refused_status), Some(401), "a retired key's token");
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_finishes_its_request_head_is_cut() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let d = Dash::start(&["--handshake-timeout-secs", "1"]).await;
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", d.port)).await.expect("connect");
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("half a request head");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf)).await;
    let elapsed = started.elapsed();
    match read {
        Ok(Ok(n)) => assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"), "{:?}", &buf[..n]),
        Ok(Err(_)) => {} // reset: cut as well
        Err(_) => panic!("the half-open handshake was still open after 10 s"),
    }
    assert!(elapsed < Duration::from_secs(5), "cut after {elapsed:?}");
    // A complete request on a fresh connection is served as usual.
    assert_eq!(request(d.port, "/healthz", &[]).await.map(|(s, _)| s), Some(200));
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_with_auth_off_says_so() {
    let d = Dash::start(&["--auth-off"]).await;
    let (status, body) = request(d.port, "/api/config", &[]).await.expect("config");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["auth"], false);
    let mut ws = WsClient::connect(d.port, None, None).await.expect("no token needed");
    let hello = ws.expect("hello", WAIT).await;
    assert_eq!((hello["auth"].as_bool(), hello["client"].is_null()), (Some(false), true));
    ws.send(json!({"op": "subscribe", "client": "anyone"})).await;
    assert_eq!(ws.expect("snapshot", WAIT).await["client"], "anyone");
    // (The page showing its banner is checked in a real browser: browser.rs.)
    let _ = std::fs::remove_dir_all(&d.root);
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_slow_subscriber_is_coalesced_bounded_and_delays_nobody() {
    const ROWS: i64 = 50;
    const ROUNDS: i64 = 400;
    let d = Dash::start(&[]).await;
    let symbols: Vec<String> = (0..ROWS).map(|i| format!("S{i:02}")).collect();
    let subscribe = json!({"op": "subscribe", "client": "S"});
    // The slow subscriber subscribes and then never reads again.
    let mut slow = d.connect("S").await;
    slow.send(subscribe.clone()).await;
    let mut fast = d.connect("S").await;
    fast.send(subscribe.clone()).await;
    fast.expect("snapshot", WAIT).await;
    // The fast subscriber reads all along and reaches the final version of every row.
    let reader = tokio::spawn(async move {
        let mut latest = std::collections::HashMap::new();
        fast.collect_until(Duration::from_secs(180), |frames| {
            if let Some(f) = frames.last() {
                for r in rows(f) {
                    latest.insert(
                        r["symbol"].as_str().unwrap_or_default().to_owned(),
                        r["trade_count"].as_i64().unwrap_or_default(),
                    );
                }
            }
            latest.len() == ROWS as usize && latest.values().all(|c| *c == ROUNDS)
        })
        .await;
    });
    let mut offset = 0;
    for round in 1..=ROUNDS {
        let mut batch = Vec::new();
        for s in &symbols {
            offset += 1;
            batch.push(d.change("S", "ACC1", s, round, offset));
        }
        futures::future::join_all(batch).await;
    }
    reader.await.expect("the fast subscriber reached every final version");
    let coalesced = metric(d.port, "tradeflow_dashboard_coalesced_updates_total").await.unwrap_or_default();
    assert!(coalesced > 1000, "the stuck subscriber's updates were merged per row, not queued: {coalesced}");
    let rss = d.service.peak_rss_kib().expect("rss");
    assert!(rss < 200 * 1024, "dashboard memory stays bounded: peak {rss} KiB");

    // When the slow one reads at last, it converges on the same final rows through far fewer frames.
    let mut slow_latest = std::collections::HashMap::new();
    let frames = slow
        .collect_until(Duration::from_secs(60), |frames| {
            if let Some(f) = frames.last() {
                for r in rows(f) {
                    slow_latest.insert(
                        r["symbol"].as_str().unwrap_or_default().to_owned(),
                        r["trade_count"].as_i64().unwrap_or_default(),
                    );
                }
            }
            slow_latest.len() == ROWS as usize && slow_latest.values().all(|c| *c == ROUNDS)
        })
        .await;
    assert!(
        frames.len() < (ROWS * ROUNDS) as usize / 2,
        "slow subscriber got {} frames for {} changes",
        frames.len(),
        ROWS * ROUNDS
    );
    let _ = std::fs::remove_dir_all(&d.root);
}
