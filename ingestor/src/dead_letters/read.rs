//! Reading `trades.dlq`: every partition from its start to its end as of the call (blocking).

use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tradeflow_core::kafka::{EndOfPartitionIsNormal, KafkaArgs};

use super::{DeadLetter, DlqError, Lines};

/// How long a read may take before it gives up (a broker that stops answering half-way).
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads every record `topic` holds now and folds them by line. Memory: every record's headers
/// and the line bytes, i.e. the dead-letter topic's size (each value at most 900 KiB).
pub fn read_lines(kafka: &KafkaArgs, topic: &str) -> Result<Lines, DlqError> {
    let consumer: BaseConsumer<EndOfPartitionIsNormal> = kafka
        .consumer_config()
        .set("group.id", format!("tradeflow-dlq-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create_with_context(EndOfPartitionIsNormal)?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        return Err(DlqError::NoTopic(topic.to_owned()));
    }
    let mut tpl = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
            ends.insert(p, high);
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(Lines::fold(records));
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + READ_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(DlqError::Kafka(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::RequestTimedOut,
            )));
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = result?;
        let Some(&end) = ends.get(&m.partition()) else { continue };
        if m.offset() < end {
            records.push(DeadLetter::from_message(&m));
        }
        if m.offset() + 1 >= end {
            ends.remove(&m.partition());
        }
    }
    Ok(Lines::fold(records))
}
