//! Reading `trades.dlq`: every partition from its start to its end as of the call (blocking).

use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use tradeflow_core::kafka::{EndOfPartitionIsNormal, KafkaArgs};

use super::{DeadLetter, DlqError, LineKey, Lines};

/// How long a read may go without a record before it gives up (a broker that stops answering
/// half-way): [`DlqError::Stalled`]. A long topic takes as long as it takes while records arrive.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads every record `topic` holds now and folds them by line ([`Lines::add`]). Memory: every
/// record's headers, and the raw bytes (at most 900 KiB each) only of the newest dead letter of
/// the lines `keep_bytes` names: `|_| false` for a listing, one line for `show`, the selected
/// lines for a re-drive.
pub fn read_lines(kafka: &KafkaArgs, topic: &str, keep_bytes: &dyn Fn(&LineKey) -> bool) -> Result<Lines, DlqError> {
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
    let mut lines = Lines::default();
    if ends.is_empty() {
        return Ok(lines);
    }
    consumer.assign(&tpl)?;
    let mut last_record = Instant::now();
    while !ends.is_empty() {
        if last_record.elapsed() > STALL_TIMEOUT {
            let mut partitions: Vec<i32> = ends.keys().copied().collect();
            partitions.sort_unstable();
            return Err(DlqError::Stalled { topic: topic.to_owned(), secs: STALL_TIMEOUT.as_secs(), partitions });
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = result?;
        last_record = Instant::now();
        let Some(&end) = ends.get(&m.partition()) else { continue };
        if m.offset() < end {
            lines.add(DeadLetter::from_message(&m), keep_bytes);
        }
        if m.offset() + 1 >= end {
            ends.remove(&m.partition());
        }
    }
    lines.finish();
    Ok(lines)
}
