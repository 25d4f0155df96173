//! The broker fails under the running pipeline: a single node killed with -9 and restarted on its
//! log dir, and the partition leader of a three-node cluster (replication factor 3,
//! `min.insync.replicas` 2) killed and later restarted. Ingestor, aggregator and dashboard carry
//! on; the tables equal the oracle and the dashboard's rows equal Postgres.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use tradeflow_aggregator::verify::current_rows;
use tradeflow_core::oracle::Oracle;
use tradeflow_core::partition::partition_for;

use crate::aggregator::Pipeline;
use crate::dashboard::Dash;
use crate::harness::http::{labelled, metric};
use crate::harness::{self, KafkaCluster, Service, eventually};

const LONG: Duration = Duration::from_secs(180);

/// Complete lines in the log files (newlines: a cheap count to poll).
fn lines_in(logs: &std::path::Path) -> u64 {
    let files = tradeflow_core::oracle::log_files(logs).unwrap_or_default();
    files
        .iter()
        .filter_map(|(_, path)| std::fs::read(path).ok())
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .sum()
}

/// Waits until the log files hold `more` lines beyond `from` (the producer keeps writing through
/// the fault); returns the count.
async fn lines_grow(p: &Pipeline, from: u64, more: u64) -> u64 {
    eventually("the producer to write on", LONG, || async {
        let n = lines_in(&p.logs);
        (n >= from + more).then_some(n)
    })
    .await
}

/// The ingestor published every line of the files and dead-lettered none.
async fn ingestor_published_everything(p: &Pipeline, port: u16) {
    let lines = Oracle::from_dir(&p.logs).expect("oracle").lines;
    eventually("the ingestor to publish every line", LONG, || async {
        metric(port, "tradeflow_ingestor_lines_published_total").await.filter(|&n| n == lines).map(|_| ())
    })
    .await;
    let dead: i64 =
        labelled(port, "tradeflow_ingestor_lines_dead_lettered_total").await.unwrap_or_default().iter().sum();
    assert_eq!(dead, 0, "no line was bad");
}

#[tokio::test]
async fn broker_killed_mid_stream_and_restarted_on_its_log_dir_loses_and_double_counts_nothing() {
    let mut broker = KafkaCluster::start(1);
    let p = Pipeline::on_broker(broker.kafka()).await;
    let mut producer = Service::producer(
        &["--clients", "1,2,3,4", "--rate", "300", "--count", "9000", "--seed", "41"],
        &p.logs,
        &p.root,
    );
    let ingestor_port = harness::broker::free_port();
    let _ingestor = p.start("ingestor", ingestor_port);
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    eventually("aggregator progress and a snapshot", LONG, || async {
        let records = metric(port, "tradeflow_aggregator_records_total").await?;
        let snaps = metric(port, "tradeflow_aggregator_snapshots_total").await?;
        (records >= 1500 && snaps >= 1).then_some(())
    })
    .await;
    let before = lines_in(&p.logs);
    broker.kill9(0);
    // Down while the producer writes another ~2 s of lines; then back on the same log dir.
    lines_grow(&p, before, 2000).await;
    broker.restart(0);
    let after = metric(port, "tradeflow_aggregator_records_total").await.unwrap_or_default();
    eventually("the aggregator to carry on after the restart", LONG, || async {
        metric(port, "tradeflow_aggregator_records_total").await.filter(|&n| n > after + 1000).map(|_| ())
    })
    .await;
    producer.exited("the producer to finish", LONG).await;
    ingestor_published_everything(&p, ingestor_port).await;
    p.converges().await;
    p.cleanup();
}

/// Broker id of the leader of `topic`'s `partition`, and the replica count.
fn leader_of(brokers: &str, topic: &str, partition: i32) -> Option<(i32, usize)> {
    let consumer: BaseConsumer = tradeflow_core::kafka::KafkaArgs::new(brokers).client_config().create().ok()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == partition)?;
    (p.leader() >= 0).then(|| (p.leader(), p.replicas().len()))
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_loss_in_a_three_node_cluster_loses_and_doubles_nothing() {
    let mut cluster = KafkaCluster::start(3);
    let p = Pipeline::on_broker(cluster.kafka()).await;
    let brokers = cluster.brokers();
    let trades = p.topics.topics.trades.clone();
    // Client 1's partition: every replica on the three nodes.
    let partition = partition_for(b"1", p.topics.partitions.trades_partitions);
    let (leader, replicas) = leader_of(&brokers, &trades, partition).expect("trades metadata");
    assert_eq!(replicas, 3, "trades is replicated to every node");
    let (_, summaries_replicas) = leader_of(&brokers, &p.topics.topics.summaries, 0).expect("summaries metadata");
    assert_eq!(summaries_replicas, 3, "summaries is replicated to every node");

    let mut producer = Service::producer(
        &["--clients", "1,2,3,4", "--rate", "300", "--count", "9000", "--seed", "43"],
        &p.logs,
        &p.root,
    );
    let ingestor_port = harness::broker::free_port();
    let _ingestor = p.start("ingestor", ingestor_port);
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    let dash = Dash::start_on(p.topics.clone(), &[], &[("DATABASE_URL", p.db.url.clone())]).await;
    eventually("aggregator progress and a snapshot", LONG, || async {
        let records = metric(port, "tradeflow_aggregator_records_total").await?;
        let snaps = metric(port, "tradeflow_aggregator_snapshots_total").await?;
        (records >= 1500 && snaps >= 1).then_some(())
    })
    .await;
    // Kill the leader of the partition in use; another replica takes over.
    let node = cluster.node_by_id(leader).expect("the leader is one of ours");
    cluster.kill9(node);
    let new_leader = eventually("a new leader for client 1's partition", LONG, || async {
        leader_of(&brokers, &trades, partition).map(|(l, _)| l).filter(|&l| l != leader)
    })
    .await;
    assert_ne!(new_leader, leader);
    let after = metric(port, "tradeflow_aggregator_records_total").await.unwrap_or_default();
    eventually("the aggregator to carry on without the old leader", LONG, || async {
        metric(port, "tradeflow_aggregator_records_total").await.filter(|&n| n > after + 1000).map(|_| ())
    })
    .await;
    cluster.restart(node);
    producer.exited("the producer to finish", LONG).await;
    ingestor_published_everything(&p, ingestor_port).await;
    p.converges().await;
    // The page's rows equal Postgres, client by client.
    let stored = current_rows(&p.db.pool).await.expect("rows");
    for client in ["1", "2", "3", "4"] {
        let want: BTreeMap<String, i64> = stored
            .iter()
            .filter(|(k, _)| k.client_id.as_str() == client)
            .map(|(k, pos)| (format!("{}|{}|{}", k.trade_date, k.account_id, k.symbol), pos.trade_count))
            .collect();
        assert!(!want.is_empty());
        eventually(&format!("client {client}'s page rows to equal Postgres"), LONG, || async {
            let body = dash.rest(client).await;
            let got: BTreeMap<String, i64> = body["rows"]
                .as_array()?
                .iter()
                .map(|r| {
                    let key = format!(
                        "{}|{}|{}",
                        r["trade_date"].as_str()?,
                        r["account_id"].as_str()?,
                        r["symbol"].as_str()?
                    );
                    Some((key, r["trade_count"].as_i64()?))
                })
                .collect::<Option<_>>()?;
            (got == want).then_some(())
        })
        .await;
    }
    p.cleanup();
}

/// The aggregator is stopped (SIGTERM) while its broker is down and Postgres is up: it must write
/// its final snapshot — here every row, the periodic snapshot being an hour away — and exit within
/// `docker compose stop`'s 10 s grace. The broker hangs (SIGSTOP: a frozen host, a partition):
/// nothing answers, nothing is refused, so closing each consumer (leaving its group) waits on
/// requests that time out, and the row changes still queued for `summaries` (a long linger keeps
/// them there, as a broker going away mid-stream does) cannot be delivered. Started again on the
/// restarted broker, the aggregator carries on from the stored offsets: nothing lost, nothing
/// applied twice.
#[tokio::test(flavor = "multi_thread")]
async fn aggregator_stopped_with_the_broker_down_writes_its_final_snapshot_and_exits_in_time() {
    const GRACE: Duration = Duration::from_secs(10);
    let mut broker = KafkaCluster::start(1);
    let p = Pipeline::on_broker(broker.kafka()).await;
    p.produce(&["--clients", "1,2,3", "--count", "1500", "--seed", "47", "--rate", "5000"]);
    let lines = Oracle::from_dir(&p.logs).expect("oracle").lines;
    let ingestor_port = harness::broker::free_port();
    let mut ingestor = p.start("ingestor", ingestor_port);
    let port = harness::broker::free_port();
    let slow = [("TRADEFLOW_SNAPSHOT_INTERVAL_MS", "3600000"), ("TRADEFLOW_CHANGELOG_LINGER_MS", "600000")];
    let mut aggregator = p.start_with("aggregator", port, &slow);
    ingestor_published_everything(&p, ingestor_port).await;
    eventually("the aggregator to apply every line and be caught up", LONG, || async {
        let records = metric(port, "tradeflow_aggregator_records_total").await?;
        let lags = labelled(port, "tradeflow_aggregator_consumer_lag").await?;
        (records >= lines && lags.len() == 12 && lags.iter().all(|&l| l == 0)).then_some(())
    })
    .await;
    assert_eq!(metric(port, "tradeflow_aggregator_snapshots_total").await, Some(0), "only the final snapshot writes");
    assert!(ingestor.terminate(LONG), "the ingestor did not stop cleanly");
    broker.pause(0);

    let stopping = std::time::Instant::now();
    let clean = aggregator.terminate(GRACE);
    let took = stopping.elapsed();
    let log = std::fs::read_to_string(p.root.join("aggregator.log")).unwrap_or_default();
    assert!(clean, "the aggregator did not exit cleanly within {GRACE:?} of SIGTERM (took {took:?}); its log:\n{log}");
    assert!(!log.contains("without a final snapshot"), "{log}");
    // The final snapshot alone holds every row: equal to the oracle now, without waiting.
    p.equals_the_oracle().await;

    // The broker restarted on its log dir (killed while hung), the aggregator starts at the
    // stored offsets: still equal.
    broker.restart(0);
    let port = harness::broker::free_port();
    let _aggregator = p.start("aggregator", port);
    eventually("the restarted aggregator to own every partition, caught up", LONG, || async {
        let lags = labelled(port, "tradeflow_aggregator_consumer_lag").await?;
        (lags.len() == 12 && lags.iter().all(|&l| l == 0)).then_some(())
    })
    .await;
    assert_eq!(metric(port, "tradeflow_aggregator_records_total").await, Some(0), "nothing consumed again");
    p.converges().await;
    p.cleanup();
}
