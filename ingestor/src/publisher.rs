//! The Kafka side: an idempotent producer (`acks=all`, Java-compatible murmur2 partitioning) whose
//! delivery reports feed each file's [`AckWindow`]. When the producer's queue is full, a send
//! waits: reading pauses and memory stays bounded while the broker is slow or down — until
//! shutdown, which abandons the waiting send ([`KafkaError::Canceled`]): its line was never handed
//! to the producer, so the cursor stays before it and the next start reads it again.
//!
//! Trades are produced through a topic handle made once ([`TopicHandle`]); dead letters, which
//! carry headers, through rust-rdkafka's `send`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, IntoOpaque as _};
use tokio_util::sync::CancellationToken;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::topics::Topics;

use crate::ack_window::AckWindow;
use crate::metrics::Metrics;
use crate::topic_handle::TopicHandle;

/// What a delivery report needs to find its line.
pub struct Pending {
    pub window: Arc<AckWindow>,
    pub seq: u64,
    pub sent: Instant,
    pub dead_letter: bool,
}

pub struct AckContext {
    metrics: Arc<Metrics>,
    /// Deliveries failed so far: the first few are logged whole, then every 1,000th with the count
    /// (a stop with the broker down fails every line in flight at once: thousands).
    failures: std::sync::atomic::AtomicU64,
}

/// How many failed deliveries are logged one by one before only every 1,000th is.
const FAILURES_LOGGED: u64 = 5;

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
                let n = self.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n <= FAILURES_LOGGED {
                    tracing::error!(error = %e, "delivery failed; the cursor stays before this line");
                } else if n.is_multiple_of(1000) {
                    tracing::error!(error = %e, failed_so_far = n, "deliveries failed; the cursors stay before their lines");
                }
                if n == FAILURES_LOGGED {
                    tracing::error!(
                        "more failed deliveries are logged once per 1,000 (the cursors stay before every one)"
                    );
                }
                pending.window.fail(e.to_string());
            }
        }
    }
}

pub struct Publisher {
    /// Declared before the producer: destroyed first, as librdkafka requires.
    trades: TopicHandle,
    trades_name: String,
    dead_letters: String,
    producer: ThreadedProducer<AckContext>,
    /// Shutdown: a send waiting for room in a full queue gives up.
    stop: CancellationToken,
}

/// Producer settings (SPEC §2; the ingestor issue §4).
pub struct PublisherConfig {
    pub linger_ms: u64,
    pub queue_kb: u64,
    pub compression: String,
}

impl Publisher {
    pub fn new(
        kafka: &KafkaArgs,
        config: &PublisherConfig,
        topics: &Topics,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<Self, KafkaError> {
        let mut client = kafka.client_config();
        client
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
            .set("compression.type", &config.compression);
        // Connect to every broker the metadata names at once, not on first need (librdkafka then
        // waits ~50 ms before picking one, and the producer id waits for it; see `warm_up`).
        if client.get("enable.sparse.connections").is_none() {
            client.set("enable.sparse.connections", "false");
        }
        let producer: ThreadedProducer<AckContext> =
            client.create_with_context(AckContext { metrics, failures: Default::default() })?;
        let trades = TopicHandle::new(producer.client(), &topics.trades)?;
        Ok(Self { trades, trades_name: topics.trades.clone(), dead_letters: topics.trades_dlq.clone(), producer, stop })
    }

    /// Asks for the trades topic's metadata on the producer's own connection, twice. librdkafka
    /// requests the idempotent producer's id when a metadata response arrives and otherwise only
    /// every 500 ms; the first response comes from the bootstrap address before the broker it
    /// names is connected, so without this every start held its first records for half a second
    /// (librdkafka's `eos` debug log: "No brokers available for Idempotent producer"). With it,
    /// and connections made at once, the id came 3–11 ms after start on a local broker.
    /// Blocking; errors are only logged (the connection check before reported them, and the
    /// producer retries on its own).
    pub fn warm_up(&self, timeout: Duration) {
        for _ in 0..2 {
            if let Err(e) = self.producer.client().fetch_metadata(Some(&self.trades_name), timeout) {
                tracing::debug!(error = %e, "no metadata for the trades topic yet");
                return;
            }
        }
    }

    /// Hands one trade record to the producer, waiting while its queue is full; at shutdown a
    /// waiting send gives up with [`KafkaError::Canceled`] (the record was not handed over).
    pub async fn send_trade(&self, key: &[u8], payload: &[u8], pending: Pending) -> Result<(), KafkaError> {
        let mut pending = Box::new(pending);
        let mut backoff = QueueFullBackoff::new();
        loop {
            match self.produce_trade(key, payload, pending) {
                Ok(()) => return Ok(()),
                Err((RDKafkaErrorCode::QueueFull, returned)) => {
                    pending = returned;
                    self.wait_for_room(&mut backoff).await?;
                }
                Err((code, _)) => return Err(KafkaError::MessageProduction(code)),
            }
        }
    }

    /// One produce call on the trades topic's handle; the opaque back when it fails.
    fn produce_trade(
        &self,
        key: &[u8],
        payload: &[u8],
        pending: Box<Pending>,
    ) -> Result<(), (RDKafkaErrorCode, Box<Pending>)> {
        let opaque = pending.into_ptr();
        // SAFETY: the handle was made on this producer's client, which is alive.
        match unsafe { self.trades.produce(self.producer.client().native_ptr(), key, payload, opaque) } {
            RDKafkaErrorCode::NoError => Ok(()),
            // SAFETY: the failed call did not take `opaque`; it is reclaimed exactly once.
            code => Err((code, unsafe { Box::<Pending>::from_ptr(opaque) })),
        }
    }

    /// Hands one dead letter (with its headers) to the producer, waiting while its queue is full
    /// (given up at shutdown, as [`Self::send_trade`]).
    pub async fn send_dead_letter(
        &self,
        key: &[u8],
        payload: &[u8],
        headers: OwnedHeaders,
        pending: Pending,
    ) -> Result<(), KafkaError> {
        let mut record = BaseRecord::with_opaque_to(&self.dead_letters, Box::new(pending))
            .key(key)
            .payload(payload)
            .headers(headers);
        let mut backoff = QueueFullBackoff::new();
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    self.wait_for_room(&mut backoff).await?;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// One back-off step while the queue is full, or `Canceled` once shutdown has begun.
    async fn wait_for_room(&self, backoff: &mut QueueFullBackoff) -> Result<(), KafkaError> {
        tokio::select! {
            _ = self.stop.cancelled() => Err(KafkaError::Canceled),
            _ = backoff.wait() => Ok(()),
        }
    }

    /// Waits up to `timeout` for every queued record to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

/// How long a send waits for room in a full producer queue: short at first, doubling to 50 ms.
struct QueueFullBackoff(Duration);

impl QueueFullBackoff {
    fn new() -> Self {
        Self(Duration::from_micros(200))
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_millis(50));
    }
}

/// Dead-letter headers.
pub fn dlq_headers(fields: &[(&str, &str)]) -> OwnedHeaders {
    fields.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(*value) }))
}
