//! Aggregator instances dying and pausing while trades flow.
//!
//! These run against librdkafka's mock cluster: the fault they need — a member that dies or stops
//! responding — is one tansu 0.6.0 cannot take (it keeps an expired member in the group, so its
//! partitions are never reassigned); Apache Kafka and the mock cluster reassign them after the
//! session timeout. Everything else (files, ingestor, aggregator processes, Postgres) is real.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::topics::Topics;

use crate::harness::http::metric;
use crate::harness::{self, Service, TestDatabase, eventually};

const LONG: Duration = Duration::from_secs(120);

#[tokio::test]
async fn instances_join_one_leaves_one_dies_one_pauses_and_the_tables_equal_the_oracle() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let topics = Topics::default();
    mock.create_topic(&topics.trades, 12, 1).expect("trades");
    mock.create_topic(&topics.trades_dlq, 1, 1).expect("dlq");
    mock.create_topic(&topics.prices, 3, 1).expect("prices");
    mock.create_topic(&topics.summaries, 12, 1).expect("summaries");
    let kafka = KafkaArgs::new(mock.bootstrap_servers());
    let db = TestDatabase::create().await;
    let root = harness::temp_dir();
    let logs = root.join("logs");
    let env = |metrics: u16| -> Vec<(&'static str, String)> {
        vec![
            ("KAFKA_BROKERS", kafka.brokers.clone()),
            ("TRADE_LOG_DIR", logs.display().to_string()),
            ("TRADEFLOW_INGESTOR_STATE", root.join("state").display().to_string()),
            ("TRADEFLOW_INGESTOR_METRICS_ADDR", "127.0.0.1:0".into()),
            ("DATABASE_URL", db.url.clone()),
            ("TRADEFLOW_SNAPSHOT_INTERVAL_MS", "200".into()),
            ("TRADEFLOW_SESSION_TIMEOUT_MS", "6000".into()),
            ("TRADEFLOW_RESUME_FROM_START", "false".into()),
            ("TRADEFLOW_AGGREGATOR_METRICS_ADDR", format!("127.0.0.1:{metrics}")),
            ("RUST_LOG", "info".into()),
        ]
    };
    let mut producer = Service::producer(&["--clients", "1,2,3,4,5,6,7,8", "--rate", "200", "--count", "100000", "--seed", "31"], &logs, &root);
    let _ingestor = Service::start("ingestor", &["ingestor"], &env(0), &root);
    let ports: Vec<u16> = (0..3).map(|_| harness::broker::free_port()).collect();
    let owned = |port: u16| async move { metric(port, "tradeflow_aggregator_partitions_owned").await };
    let sum = |live: Vec<u16>| async move {
        let mut n = Vec::new();
        for port in live {
            n.push(owned(port).await?);
        }
        Some(n)
    };
    let mut a = Service::start("aggregator", &["aggregator"], &env(ports[0]), &root);
    eventually("A owns every partition", LONG, || async { owned(ports[0]).await.filter(|&n| n == 12) }).await;
    // Two, then three instances.
    let mut b = Service::start("aggregator", &["aggregator"], &env(ports[1]), &root);
    eventually("A and B share the partitions", LONG, || async {
        let n = sum(vec![ports[0], ports[1]]).await?;
        (n.iter().all(|&x| x > 0) && n.iter().sum::<u64>() == 12).then_some(())
    })
    .await;
    let mut c = Service::start("aggregator", &["aggregator"], &env(ports[2]), &root);
    eventually("A, B and C share the partitions", LONG, || async {
        let n = sum(ports.clone()).await?;
        (n.iter().all(|&x| x > 0) && n.iter().sum::<u64>() == 12).then_some(())
    })
    .await;
    // C dies: its partitions are owned again within the session timeout (6 s) plus a rebalance.
    c.kill9();
    let died = std::time::Instant::now();
    eventually("A and B own every partition", LONG, || async {
        let n = sum(vec![ports[0], ports[1]]).await?;
        (n.iter().sum::<u64>() == 12).then_some(())
    })
    .await;
    assert!(died.elapsed() < Duration::from_secs(20), "partitions orphaned for {:?}", died.elapsed());
    // B is paused (SIGSTOP) until A has taken its partitions over, then resumed: its next snapshot
    // is fenced, so it cannot overwrite A's progress.
    let pid = b.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    eventually("A owns every partition", LONG, || async { owned(ports[0]).await.filter(|&n| n == 12) }).await;
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());
    // A third instance joins again, and then leaves cleanly.
    let mut c2 = Service::start("aggregator", &["aggregator"], &env(ports[2]), &root);
    eventually("A, B and C share again", LONG, || async {
        let n = sum(ports.clone()).await?;
        (n.iter().sum::<u64>() == 12 && n[2] > 0).then_some(())
    })
    .await;
    assert!(c2.terminate(Duration::from_secs(30)), "C did not leave cleanly");
    assert!(producer.terminate(Duration::from_secs(30)), "the producer did not stop cleanly");
    // Every trade exactly once.
    let oracle = tradeflow_core::oracle::Oracle::from_dir(&logs).expect("oracle");
    let diffs = eventually("the snapshot tables to equal the oracle", LONG, || async {
        let stored = tradeflow_aggregator::verify::current_rows(&db.pool).await.ok()?;
        let diffs = tradeflow_aggregator::verify::compare(&stored, &oracle);
        diffs.is_empty().then_some(diffs)
    })
    .await;
    assert!(diffs.is_empty());
    a.kill9();
    b.kill9();
    let _ = std::fs::remove_dir_all(&root);
}
