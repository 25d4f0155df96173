//! Reading a whole topic back (all partitions, from the beginning) with a fresh consumer group.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers as _;
use tradeflow_core::kafka::KafkaArgs;

#[derive(Clone, Debug)]
pub struct Record {
    pub key: Vec<u8>,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// A consumer of `topic` from the beginning, in a group of its own.
pub struct TopicReader {
    consumer: StreamConsumer,
    pub records: Vec<Record>,
}

impl TopicReader {
    pub fn new(kafka: &KafkaArgs, topic: &str) -> Self {
        let consumer: StreamConsumer = kafka
            .client_config()
            .set("group.id", super::unique("reader-"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        Self { consumer, records: Vec::new() }
    }

    /// Reads until `done(records)` holds; panics with `what` after `timeout`. `done` is checked
    /// after every 1000 new records and whenever the topic goes quiet, so it may be expensive.
    pub async fn read_until(&mut self, what: &str, timeout: Duration, mut done: impl FnMut(&[Record]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut checked_at = usize::MAX;
        let mut idle = true;
        loop {
            if (idle && checked_at != self.records.len()) || self.records.len() >= checked_at.wrapping_add(1000) {
                checked_at = self.records.len();
                if done(&self.records) {
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}; have {} records", self.records.len());
            }
            let m = match tokio::time::timeout(Duration::from_millis(100), self.consumer.recv()).await {
                Err(_) => {
                    idle = true;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "consume error (retrying)");
                    continue;
                }
                Ok(Ok(m)) => m,
            };
            idle = false;
            let mut headers = HashMap::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    let value = header.value.map(|v| String::from_utf8_lossy(v).to_string()).unwrap_or_default();
                    headers.insert(header.key.to_owned(), value);
                }
            }
            self.records.push(Record {
                key: m.key().unwrap_or_default().to_vec(),
                partition: m.partition(),
                offset: m.offset(),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }

    /// Reads until at least `n` records.
    pub async fn read_n(&mut self, n: usize, timeout: Duration) {
        self.read_until(&format!("{n} records"), timeout, |r| r.len() >= n).await
    }
}
