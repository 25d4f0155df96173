//! The Kafka side: an idempotent producer (`acks=all`, Java-compatible murmur2 partitioning) whose
//! delivery reports feed each file's [`AckWindow`]. When the producer's queue is full, `send`
//! waits: reading pauses and memory stays bounded while the broker is slow or down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use tradeflow_core::kafka::KafkaArgs;

use crate::ack_window::AckWindow;
use crate::metrics::Metrics;

/// What a delivery report needs to find its line.
pub struct Pending {
    pub window: Arc<AckWindow>,
    pub seq: u64,
    pub sent: Instant,
    pub dead_letter: bool,
}

pub struct AckContext {
    metrics: Arc<Metrics>,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        match result {
            Ok(_) => {
                self.metrics.observe_publish_latency(pending.sent.elapsed());
                if !pending.dead_letter {
                    self.metrics.lines_published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                pending.window.ack(pending.seq);
            }
            Err((e, _)) => {
                tracing::error!(error = %e, "delivery failed; the cursor stays before this line");
                pending.window.fail(e.to_string());
            }
        }
    }
}

pub struct Publisher {
    producer: ThreadedProducer<AckContext>,
}

/// Producer settings (SPEC §2; the ingestor issue §4).
pub struct PublisherConfig {
    pub linger_ms: u64,
    pub queue_kb: u64,
    pub compression: String,
}

impl Publisher {
    pub fn new(kafka: &KafkaArgs, config: &PublisherConfig, metrics: Arc<Metrics>) -> Result<Self, KafkaError> {
        let producer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", config.linger_ms.to_string())
            .set("batch.size", "1000000")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.kbytes", config.queue_kb.max(1024).to_string())
            .set("queue.buffering.max.messages", "1000000")
            // Never give up on a record: when the broker is down, wait for it (bounded by the queue).
            .set("message.timeout.ms", "0")
            .set("compression.type", &config.compression)
            .create_with_context(AckContext { metrics })?;
        Ok(Self { producer })
    }

    /// Hands one record to the producer, waiting while its queue is full.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: Option<OwnedHeaders>,
        pending: Pending,
    ) -> Result<(), KafkaError> {
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(pending)).key(key).payload(payload);
        if let Some(h) = headers {
            record = record.headers(h);
        }
        let mut backoff = Duration::from_micros(200);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits up to `timeout` for every queued record to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

/// Dead-letter headers.
pub fn dlq_headers(fields: &[(&str, &str)]) -> OwnedHeaders {
    fields.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(*value) }))
}
