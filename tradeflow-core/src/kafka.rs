//! Kafka client settings shared by every service, and idempotent topic creation.

use std::time::Duration;

use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::topics::TopicSpec;

/// `--brokers` for every command that talks to Kafka.
#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Bootstrap servers, comma-separated host:port.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Longest a consumer's fetch waits at the broker for data (ms). Kafka answers a waiting fetch
    /// as soon as data arrives, so this adds no latency; a short wait only makes idle consumers
    /// poll the broker more often.
    #[arg(long, env = "TRADEFLOW_FETCH_WAIT_MS", default_value_t = DEFAULT_FETCH_WAIT_MS)]
    pub fetch_wait_ms: u64,
}

/// Producer compression codecs librdkafka and the broker both take (`compression.type`).
pub const COMPRESSION_CODECS: [&str; 5] = ["none", "lz4", "zstd", "snappy", "gzip"];

/// See [`KafkaArgs::fetch_wait_ms`].
pub const DEFAULT_FETCH_WAIT_MS: u64 = 100;

impl KafkaArgs {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self { brokers: brokers.into(), fetch_wait_ms: DEFAULT_FETCH_WAIT_MS }
    }

    /// [`Self::client_config`] for a consumer: with the fetch wait.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config.set("fetch.wait.max.ms", self.fetch_wait_ms.to_string());
        config
    }

    /// A client config with the bootstrap servers, IPv4 resolution (SPEC §5: the brokers listen and
    /// advertise on 127.0.0.1) and Nagle off (small produce and fetch requests must not wait for
    /// delayed ACKs: it showed as tens of milliseconds in the end-to-end latency benchmark).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("broker.address.family", "v4")
            .set("socket.nagle.disable", "true");
        config
    }
}

/// The context of consumers that read to the end of partitions (`enable.partition.eof`): librdkafka
/// also reports each end of a partition as a "global error", and the default context would log
/// it at ERROR; it is an expected event (readiness, the end of a backfill), logged at debug.
pub struct EndOfPartitionIsNormal;

impl rdkafka::ClientContext for EndOfPartitionIsNormal {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!(reason, "end of partition");
            }
            e => tracing::error!(error = %e, reason, "Kafka client error"),
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndOfPartitionIsNormal {}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot create the Kafka admin client: {0}")]
    Client(#[source] KafkaError),
    #[error("creating topics failed: {0}")]
    Request(#[source] KafkaError),
    #[error("creating topic {topic} failed: {code}")]
    Topic { topic: String, code: RDKafkaErrorCode },
}

/// Creates the topics that do not exist yet; an existing topic is left as it is.
/// Returns the names it created.
pub async fn create_topics(kafka: &KafkaArgs, specs: &[TopicSpec]) -> Result<Vec<String>, TopicError> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().map_err(TopicError::Client)?;
    let configs: Vec<Vec<(&str, &str)>> =
        specs.iter().map(|s| if s.compacted { vec![("cleanup.policy", "compact")] } else { vec![] }).collect();
    let topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&configs)
        .map(|(s, config)| {
            let mut t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication));
            for (k, v) in config {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&topics, &options).await.map_err(TopicError::Request)?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Topic { topic, code }),
        }
    }
    Ok(created)
}
