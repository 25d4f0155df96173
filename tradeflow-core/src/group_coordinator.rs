//! Making a fresh cluster's group coordinator ready before any consumer group needs it.
//!
//! Kafka creates its offsets topic (`__consumer_offsets`, 50 partitions by default) on the first
//! FindCoordinator request for a group, and a group can join only once that topic's partition
//! for it is loaded. On a fresh single broker this took ~6 s (docs/benchmarks.md, recovery under
//! load): the aggregator's first join paid it while trades queued. Asking for a group's committed
//! offsets needs its coordinator, so it makes the broker create and load the topic now.

use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;

use crate::kafka::KafkaArgs;

/// Waits (blocking, up to `timeout`) until the broker can coordinate `group`: it asks for the
/// group's committed offset of `topic` partition 0, which needs the group's coordinator (Kafka's
/// OffsetFetch). Joins no group and commits nothing. Returns how long it took.
///
/// Errors: the client cannot be made, or the coordinator did not answer within `timeout`.
pub fn wait_for_group_coordinator(
    kafka: &KafkaArgs,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Duration, KafkaError> {
    let started = Instant::now();
    loop {
        let consumer: BaseConsumer = kafka
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()?;
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(topic, 0);
        // An attempt at a time: while the offsets topic loads, the broker answers NotCoordinator,
        // and librdkafka's request then waits out the whole timeout instead of asking again.
        let left = timeout.saturating_sub(started.elapsed());
        match consumer.committed_offsets(partitions, left.min(ATTEMPT)) {
            Ok(_) => return Ok(started.elapsed()),
            Err(e) if started.elapsed() >= timeout => return Err(e),
            Err(e) => tracing::debug!(error = %e, "group coordinator not ready yet; asking again"),
        }
    }
}

/// The longest one request for the coordinator may wait before it is asked again.
const ATTEMPT: Duration = Duration::from_secs(2);
