//! Aggregator instances joining, dying, pausing and leaving while trades flow, on Apache Kafka:
//! the group coordinator expires a dead or paused member after the session timeout and hands its
//! partitions to the others; the paused one, resumed, is fenced by Postgres.

use std::time::Duration;

use crate::aggregator::Pipeline;
use crate::harness::http::metric;
use crate::harness::{self, Service, eventually};

const LONG: Duration = Duration::from_secs(120);

#[tokio::test]
async fn instances_join_one_leaves_one_dies_one_pauses_and_the_tables_equal_the_oracle() {
    let p = Pipeline::new().await;
    let mut producer = Service::producer(
        &["--clients", "1,2,3,4,5,6,7,8", "--rate", "200", "--count", "100000", "--seed", "31"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let ports: Vec<u16> = (0..3).map(|_| harness::broker::free_port()).collect();
    let owned = |port: u16| async move { metric(port, "tradeflow_aggregator_partitions_owned").await };
    let sum = |live: Vec<u16>| async move {
        let mut n = Vec::new();
        for port in live {
            n.push(owned(port).await?);
        }
        Some(n)
    };
    let mut a = p.start("aggregator", ports[0]);
    eventually("A owns every partition", LONG, || async { owned(ports[0]).await.filter(|&n| n == 12) }).await;
    // Two, then three instances.
    let mut b = p.start("aggregator", ports[1]);
    eventually("A and B share the partitions", LONG, || async {
        let n = sum(vec![ports[0], ports[1]]).await?;
        (n.iter().all(|&x| x > 0) && n.iter().sum::<u64>() == 12).then_some(())
    })
    .await;
    let mut c = p.start("aggregator", ports[2]);
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
    let mut c2 = p.start("aggregator", ports[2]);
    eventually("A, B and C share again", LONG, || async {
        let n = sum(ports.clone()).await?;
        (n.iter().sum::<u64>() == 12 && n[2] > 0).then_some(())
    })
    .await;
    assert!(c2.terminate(Duration::from_secs(30)), "C did not leave cleanly");
    assert!(producer.terminate(Duration::from_secs(30)), "the producer did not stop cleanly");
    // Every trade exactly once.
    p.converges().await;
    a.kill9();
    b.kill9();
    p.cleanup();
}

/// An OOM-style crash loop: the aggregator is killed with -9 every ~2 s, faster than the session
/// timeout (6 s), so the group keeps dead members until they expire; then one instance is left
/// alone. The coordinator must expire the dead ones and hand it every partition.
#[tokio::test]
async fn a_crash_loop_faster_than_the_session_timeout_then_left_alone_converges() {
    let p = Pipeline::new().await;
    let mut producer = Service::producer(
        &["--clients", "1,2,3,4,5,6,7,8", "--rate", "200", "--count", "5000", "--seed", "37"],
        &p.logs,
        &p.root,
    );
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let port = harness::broker::free_port();
    let mut aggregator = p.start("aggregator", port);
    eventually("the first instance to apply trades", LONG, || async {
        metric(port, "tradeflow_aggregator_records_total").await.filter(|&n| n > 0).map(|_| ())
    })
    .await;
    for _ in 0..6 {
        // The fault's cadence, not a synchronisation: each instance lives ~2 s.
        tokio::time::sleep(Duration::from_secs(2)).await;
        aggregator.kill9();
        aggregator = p.start("aggregator", port);
    }
    let alone = std::time::Instant::now();
    eventually("the survivor to own every partition", LONG, || async {
        metric(port, "tradeflow_aggregator_partitions_owned").await.filter(|&n| n == 12).map(|_| ())
    })
    .await;
    // The dead members expire after the session timeout; then one rebalance.
    assert!(alone.elapsed() < Duration::from_secs(30), "partitions orphaned for {:?} after the loop", alone.elapsed());
    producer.exited("the producer to finish", LONG).await;
    p.converges().await;
    drop(aggregator);
    p.cleanup();
}
