//! `tradeflow prices` through broker faults on a node of the test's own: a hang (SIGSTOP) just
//! after the feed's start used to leave it alive and silent; now the ticks of the outage are
//! dropped, counted and logged and the feed ticks on, and a feed that cannot deliver for its
//! stall bound exits non-zero for its supervisor to restart it.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::topics::PartitionArgs;

use crate::harness::{KafkaCluster, Service, TestTopics, eventually, temp_dir};

const LONG: Duration = Duration::from_secs(120);

/// The records on `topic` (the sum of its partitions' end offsets); `None` while the broker does
/// not answer.
fn published(kafka: &KafkaArgs, topic: &str) -> Option<i64> {
    let client: BaseConsumer = kafka.client_config().create().ok()?;
    let timeout = Duration::from_secs(2);
    let metadata = client.fetch_metadata(Some(topic), timeout).ok()?;
    let partitions = metadata.topics().first()?.partitions().len() as i32;
    let mut total = 0;
    for p in 0..partitions {
        total += client.fetch_watermarks(topic, p, timeout).ok()?.1;
    }
    Some(total)
}

async fn published_at_least(kafka: &KafkaArgs, topic: &str, n: i64, what: &str) -> i64 {
    eventually(what, LONG, || {
        let (kafka, topic) = (kafka.clone(), topic.to_owned());
        async move {
            tokio::task::spawn_blocking(move || published(&kafka, &topic)).await.ok().flatten().filter(|&m| m >= n)
        }
    })
    .await
}

fn start_feed(topics: &TestTopics, extra_env: &[(&str, String)], root: &std::path::Path) -> Service {
    let mut env = vec![
        ("KAFKA_BROKERS", topics.kafka.brokers.clone()),
        ("TRADEFLOW_TOPIC_PREFIX", topics.prefix.clone()),
        ("RUST_LOG", "info".to_owned()),
    ];
    env.extend(extra_env.iter().cloned());
    Service::start("prices", &["prices", "--interval-ms", "50"], &env, root)
}

fn log_of(root: &std::path::Path) -> String {
    std::fs::read_to_string(root.join("prices.log")).unwrap_or_default()
}

#[tokio::test]
async fn prices_feed_ticks_on_after_a_broker_hang_at_its_start_counting_the_dropped_ticks() {
    let mut broker = KafkaCluster::start(1);
    let topics = TestTopics::create(broker.kafka(), PartitionArgs::default()).await;
    let topic = topics.topics.prices.clone();
    let root = temp_dir();
    let mut feed = start_feed(&topics, &[], &root);
    published_at_least(&topics.kafka, &topic, 1, "the feed's first ticks").await;
    broker.pause(0);
    // The fault itself: the broker hangs for 18 s (longer than a tick may take to be delivered).
    tokio::time::sleep(Duration::from_secs(18)).await;
    broker.resume(0);
    let after = published_at_least(&topics.kafka, &topic, 1, "the broker answering again").await;
    // 100 ticks a second (5 symbols every 50 ms): well over 2 s of fresh ticks.
    published_at_least(&topics.kafka, &topic, after + 250, "the feed publishing again after the hang").await;
    assert!(feed.running(), "the feed must still run:\n{}", log_of(&root));
    eventually("the outage's ticks counted and logged", LONG, || {
        let log = log_of(&root);
        let done = log.contains("price ticks are not being delivered") && log.contains("price ticks delivered again");
        async move { done.then_some(()) }
    })
    .await;
    assert!(feed.terminate(Duration::from_secs(30)), "a clean stop:\n{}", log_of(&root));
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn prices_feed_exits_non_zero_when_nothing_is_delivered_for_its_stall_bound() {
    let mut broker = KafkaCluster::start(1);
    let topics = TestTopics::create(broker.kafka(), PartitionArgs::default()).await;
    let topic = topics.topics.prices.clone();
    let root = temp_dir();
    let mut feed = start_feed(&topics, &[("TRADEFLOW_PRICES_MAX_STALL_SECS", "8".to_owned())], &root);
    published_at_least(&topics.kafka, &topic, 1, "the feed's first ticks").await;
    broker.pause(0);
    // 8 s without a delivery, then at most a tick's wait: well within the deadline. A feed blocked
    // on its deliveries (librdkafka's default 300 s message timeout) is still alive then.
    feed.exited("the feed to give up on a hung broker", Duration::from_secs(60)).await;
    broker.resume(0);
    let log = log_of(&root);
    assert_eq!(feed.exited_successfully(), Some(false), "it must exit non-zero:\n{log}");
    assert!(log.contains("no price tick delivered for"), "it must say why:\n{log}");
    let _ = std::fs::remove_dir_all(&root);
}
