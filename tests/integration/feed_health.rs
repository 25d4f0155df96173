//! The dashboard's upstream feed fails: its Kafka node (one of the test's own) is killed with -9
//! while a subscriber watches, then restarted on its log dir. `/readyz` answers 503 with the
//! reason, the gauge says so, every subscriber gets a `feed` frame (down, then up) and a fresh
//! change arrives afterwards; a quiet feed meanwhile is not down (docs/protocol.md#feed-health).

use std::time::Duration;

use serde_json::{Value, json};
use tradeflow_core::topics::PartitionArgs;

use crate::dashboard::Dash;
use crate::harness::http::{metric, request};
use crate::harness::{KafkaCluster, TestDatabase, TestTopics, eventually};

const WAIT: Duration = Duration::from_secs(30);
/// librdkafka reports all brokers down at once; the no-progress bound (3 s here) is the fallback.
const DOWN_WITHIN: Duration = Duration::from_secs(20);
/// A restarted node takes a while (JVM, KRaft) on two shared cores.
const LONG: Duration = Duration::from_secs(180);

fn trade_count(frame: &Value) -> Option<i64> {
    frame["rows"].as_array()?.iter().find(|r| r["symbol"] == "AAPL")?["trade_count"].as_i64()
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_killed_under_the_dashboard_is_told_to_readyz_and_subscribers_and_recovers() {
    let mut cluster = KafkaCluster::start(1);
    let topics = TestTopics::create(cluster.kafka(), PartitionArgs::default()).await;
    let db = TestDatabase::create().await;
    let dash = Dash::start_on(topics, &["--feed-down-after-secs", "3"], &[("DATABASE_URL", db.url.clone())]).await;
    dash.change("7", "ACC1", "AAPL", 1, 1).await;
    dash.at_seq("7", 1).await;
    let subscribe = json!({"op": "subscribe", "client": "7"});
    let mut ws = dash.connect("7").await;
    ws.send(subscribe.clone()).await;
    assert_eq!(trade_count(&ws.expect("snapshot", WAIT).await), Some(1));

    // Quiet (no record for longer than the 3-s bound): fetches are answered empty, so still up.
    assert_eq!(ws.next(Duration::from_secs(5)).await, None, "no frame while the feed is quiet");
    assert_eq!(request(dash.port, "/readyz", &[]).await.map(|(s, _)| s), Some(200));
    assert_eq!(metric(dash.port, "tradeflow_dashboard_feed_outages_total").await, Some(0));

    cluster.kill9(0);
    let reason = eventually("/readyz to answer 503 with the reason", DOWN_WITHIN, || async {
        let (status, body) = request(dash.port, "/readyz", &[]).await?;
        (status == 503 && body.starts_with("upstream Kafka unreachable since ")).then_some(body)
    })
    .await;
    let down = ws.expect("feed", DOWN_WITHIN).await;
    assert_eq!(down["state"], "down", "{down}");
    let since = down["since"].as_str().expect("since");
    assert!(chrono::DateTime::parse_from_rfc3339(since).is_ok(), "{down}");
    assert!(reason.contains(since), "/readyz names the same moment: {reason}");
    assert!(["all_brokers_down", "no_progress"].contains(&down["reason"].as_str().unwrap_or_default()), "{down}");
    assert_eq!(metric(dash.port, "tradeflow_dashboard_feed_down").await, Some(1));
    assert_eq!(metric(dash.port, "tradeflow_dashboard_feed_outages_total").await, Some(1));

    // A subscriber arriving while it is down is told just before its snapshot (the rows as last known).
    let mut late = dash.connect("7").await;
    late.send(subscribe).await;
    let first = late.next(WAIT).await.expect("a frame");
    assert_eq!(
        (first["type"].as_str(), first["state"].as_str(), first["since"].as_str()),
        (Some("feed"), Some("down"), Some(since)),
        "{first}"
    );
    assert_eq!(trade_count(&late.expect("snapshot", WAIT).await), Some(1));

    cluster.restart(0);
    for socket in [&mut ws, &mut late] {
        let up = socket.expect("feed", LONG).await;
        assert_eq!(up, json!({"type": "feed", "state": "up"}));
    }
    eventually("/readyz to answer 200 again", WAIT, || async {
        request(dash.port, "/readyz", &[]).await.filter(|(s, _)| *s == 200).map(|_| ())
    })
    .await;
    assert_eq!(metric(dash.port, "tradeflow_dashboard_feed_down").await, Some(0));
    assert_eq!(metric(dash.port, "tradeflow_dashboard_feed_down_since_seconds").await, Some(0));

    // A fresh change flows to both.
    dash.change("7", "ACC1", "AAPL", 2, 2).await;
    for socket in [&mut ws, &mut late] {
        assert_eq!(trade_count(&socket.expect("delta", WAIT).await), Some(2));
    }
    let _ = std::fs::remove_dir_all(&dash.root);
}
