//! Dead letters of the aggregator on `trades.refused` (issue 23: nothing stalls a partition).
//!
//! Whatever the aggregator refuses is set aside here and consumption goes on:
//!
//! | reason code | what | value | identity headers |
//! |---|---|---|---|
//! | `undecodable` | a record on `trades` that is not a trade record (or breaks the edge contract) | the raw payload | partition, offset |
//! | `unappliable` | a trade whose application would overflow or lose precision (`Position::apply`) | the raw payload | partition, offset, trade id, row key |
//! | `postgres_refused` | a row Postgres refuses at snapshot (a data error, SQLSTATE class 22 or 23) | the row image (a `summaries` change) | partition, offset (exclusive) the image reflects, row key, SQLSTATE |
//!
//! Refusals are deterministic given the records, so a replay after a crash refuses the same
//! records again: a refusal can appear twice on this topic (at least once), never zero times — every
//! snapshot first waits until the refusals sent before it are delivered
//! ([`RefusedSink::delivered`]). Readers dedupe by (`tradeflow.partition`, `tradeflow.offset`,
//! `tradeflow.reason_code`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use tradeflow_core::kafka::KafkaArgs;

use crate::metrics::Metrics;
pub use crate::refusal::{Reason, Refusal};

/// Header: the reason code (the table above). Same name as on `trades.dlq`.
pub const REASON_CODE: &str = "tradeflow.reason_code";
/// Header: the reason, for people.
pub const REASON: &str = "tradeflow.reason";
/// Header: the `trades` topic the record came from.
pub const SOURCE_TOPIC: &str = "tradeflow.topic";
/// Header: its `trades` partition.
pub const PARTITION: &str = "tradeflow.partition";
/// Header: its `trades` offset (for a row image: the offset, exclusive, the image reflects).
pub const OFFSET: &str = "tradeflow.offset";
/// Header: the trade's identity, `client/date/generation/offset` (SPEC §2), when decoded.
pub const TRADE_ID: &str = "tradeflow.trade_id";
/// Header: the summary row's key, `date|client|account|symbol`, when known.
pub const ROW_KEY: &str = "tradeflow.row_key";
/// Header: Postgres's SQLSTATE, for `postgres_refused`.
pub const SQLSTATE: &str = "tradeflow.sqlstate";

/// The producer of `trades.refused` (idempotent, delivery retried without end: a refusal is never
/// dropped; while it is undelivered, snapshots wait and fail, which `/readyz` shows).
pub struct RefusedSink {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    source_topic: String,
    metrics: Arc<Metrics>,
}

impl RefusedSink {
    pub fn new(kafka: &KafkaArgs, topic: &str, source_topic: &str, metrics: Arc<Metrics>) -> Result<Self, KafkaError> {
        let producer = kafka
            .client_config()
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "1")
            .create()?;
        Ok(Self { producer, topic: topic.to_owned(), source_topic: source_topic.to_owned(), metrics })
    }

    /// Sets `refusal` aside: logged (error level, with its identity), counted by reason, queued
    /// for `trades.refused`. Waits while the producer's queue is full.
    pub fn send(&self, refusal: &Refusal<'_>) {
        tracing::error!(
            reason_code = refusal.reason.code(),
            reason = %refusal.detail,
            partition = refusal.partition,
            offset = refusal.offset,
            trade_id = refusal.trade_id.as_deref().unwrap_or(""),
            row_key = refusal.row_key.as_deref().unwrap_or(""),
            "refused: set aside on {} (the partition goes on)",
            self.topic
        );
        self.metrics.count_refused(refusal.reason);
        let partition = refusal.partition.to_string();
        let offset = refusal.offset.to_string();
        let mut fields: Vec<(&str, &str)> = vec![
            (REASON_CODE, refusal.reason.code()),
            (REASON, &refusal.detail),
            (SOURCE_TOPIC, &self.source_topic),
            (PARTITION, &partition),
            (OFFSET, &offset),
        ];
        for (name, value) in [(TRADE_ID, &refusal.trade_id), (ROW_KEY, &refusal.row_key), (SQLSTATE, &refusal.sqlstate)]
        {
            if let Some(v) = value {
                fields.push((name, v));
            }
        }
        let headers =
            fields.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(*value) }));
        let key = refusal
            .row_key
            .clone()
            .or_else(|| refusal.trade_id.clone())
            .unwrap_or_else(|| format!("{partition}/{offset}"));
        let mut record = BaseRecord::to(&self.topic).key(&key).payload(refusal.value).headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    // Only a record the broker could never take (larger than the topic allows)
                    // lands here; it stays in the log line above and in the metric.
                    tracing::error!(error = %e, key, "cannot queue the refusal for {}", self.topic);
                    self.metrics.refused_unsent.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
    }

    /// Waits (up to `timeout`) until every refusal queued so far is delivered: a snapshot that
    /// moves a partition past a refused record is committed only after it (at least once).
    pub async fn delivered(&self, timeout: Duration) -> Result<(), Undelivered> {
        let started = Instant::now();
        loop {
            let left = self.producer.in_flight_count();
            if left == 0 {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Undelivered { left, topic: self.topic.clone() });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Flushes the queue at shutdown (up to `timeout`).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, topic = %self.topic, "refusals still queued at shutdown (refused again on replay)");
        }
    }
}

/// Refusals not yet delivered to `trades.refused` when a snapshot wanted to commit.
#[derive(Debug, thiserror::Error)]
#[error("{left} refused records not yet delivered to {topic}")]
pub struct Undelivered {
    pub left: i32,
    pub topic: String,
}
