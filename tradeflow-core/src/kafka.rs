//! Kafka client settings shared by every service, and idempotent topic creation.

use std::fmt;
use std::path::PathBuf;
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
    /// A properties file of librdkafka settings for every client (`key=value` lines, `#` comments):
    /// how to reach a secured cluster, e.g. `security.protocol=SASL_SSL`, `sasl.mechanism=SCRAM-SHA-512`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location` (docs/operations.md). Values are never logged.
    #[arg(long, env = "KAFKA_CONFIG_FILE", value_parser = KafkaConfigFile::read)]
    pub kafka_config: Option<KafkaConfigFile>,
    /// A librdkafka setting for every client, `key=value` (repeatable; applied after the file).
    /// Several in one value are separated by commas, a comma starting a new one only before
    /// another `key=`: `debug=broker,eos` is one setting, `linger.ms=2,acks=all` two.
    #[arg(long = "kafka-option", env = "TRADEFLOW_KAFKA_OPTIONS", hide_env_values = true,
          value_parser = KafkaOptions::parse)]
    pub kafka_options: Vec<KafkaOptions>,
}

/// One librdkafka property. Its value is redacted in `Debug` (it may be a password).
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOption {
    pub key: String,
    pub value: String,
}

impl fmt::Debug for KafkaOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=<redacted>", self.key)
    }
}

impl KafkaOption {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (key, value) = s.split_once('=').ok_or_else(|| format!("{:?}: expected key=value", redact(s)))?;
        let key = key.trim();
        if !is_property_name(key) {
            return Err(format!("{key:?}: not a librdkafka property name"));
        }
        if MANAGED.contains(&key) {
            return Err(format!("{key}: set by tradeflow itself (use --brokers for bootstrap.servers)"));
        }
        Ok(Self { key: key.to_owned(), value: value.trim().to_owned() })
    }
}

/// The settings of one `--kafka-option` value (see the flag's help for how commas split them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOptions(pub Vec<KafkaOption>);

impl KafkaOptions {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts: Vec<String> = Vec::new();
        for piece in s.split(',') {
            match parts.last_mut() {
                Some(last) if !starts_a_setting(piece) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => parts.push(piece.to_owned()),
            }
        }
        parts.iter().map(|p| KafkaOption::parse(p)).collect::<Result<_, _>>().map(Self)
    }
}

/// Whether `piece` begins with a property name and `=`.
fn starts_a_setting(piece: &str) -> bool {
    piece.split_once('=').is_some_and(|(key, _)| is_property_name(key.trim()))
}

/// Whether `key` looks like a librdkafka property name (`linger.ms`, `sasl.username`, …).
fn is_property_name(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

/// Settings tradeflow owns: an option may not override them.
const MANAGED: [&str; 2] = ["bootstrap.servers", "group.id"];

fn redact(s: &str) -> String {
    s.split_once('=').map_or_else(|| s.chars().take(40).collect(), |(k, _)| format!("{k}=<redacted>"))
}

/// A librdkafka properties file, read when the flag is parsed (a bad file stops the command at once).
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfigFile {
    pub path: PathBuf,
    pub options: Vec<KafkaOption>,
}

impl fmt::Debug for KafkaConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfigFile").field("path", &self.path).field("options", &self.options).finish()
    }
}

impl KafkaConfigFile {
    pub fn read(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let mut options = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            options.push(KafkaOption::parse(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?);
        }
        Ok(Self { path: PathBuf::from(path), options })
    }
}

/// Producer compression codecs librdkafka and the broker both take (`compression.type`).
pub const COMPRESSION_CODECS: [&str; 5] = ["none", "lz4", "zstd", "snappy", "gzip"];

/// See [`KafkaArgs::fetch_wait_ms`].
pub const DEFAULT_FETCH_WAIT_MS: u64 = 100;

/// How long a consumer waits before fetching again for a partition whose prefetched records fill
/// its local queue. librdkafka's default, 1 s, left a reader that applies records a little slower
/// than the broker sends them idle most of the time: a 2 M-record replay took 10 s at 29 % CPU,
/// and 2.8 s with 10 ms (docs/benchmarks.md, Replay).
pub const FETCH_QUEUE_BACKOFF_MS: u64 = 10;

impl KafkaArgs {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            fetch_wait_ms: DEFAULT_FETCH_WAIT_MS,
            kafka_config: None,
            kafka_options: vec![],
        }
    }

    /// The settings from `--kafka-config` and `--kafka-option`, in the order they apply.
    pub fn options(&self) -> impl Iterator<Item = &KafkaOption> {
        self.kafka_config.iter().flat_map(|f| f.options.iter()).chain(self.kafka_options.iter().flat_map(|o| &o.0))
    }

    /// [`Self::client_config`] for a consumer: with the fetch wait, and a short back-off when its
    /// prefetch queue is full (librdkafka's `fetch.queue.backoff.ms`, unless an option sets it).
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config.set("fetch.wait.max.ms", self.fetch_wait_ms.to_string());
        if config.get("fetch.queue.backoff.ms").is_none() {
            config.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
        }
        config
    }

    /// A client config with the bootstrap servers and Nagle off (small produce and fetch requests
    /// must not wait for delayed ACKs: it showed as tens of milliseconds in the end-to-end latency
    /// benchmark), then the `--kafka-config` file and the `--kafka-option`s (security, tuning).
    /// Callers set their own settings after this; a tradeflow guarantee (idempotence, acks) is
    /// therefore not overridable.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("socket.nagle.disable", "true");
        for option in self.options() {
            config.set(&option.key, &option.value);
        }
        config
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot reach Kafka at {brokers}: {reason}")]
pub struct ConnectError {
    pub brokers: String,
    pub reason: String,
    /// The settings are wrong (credentials, certificates): retrying cannot help. Otherwise the
    /// broker did not answer in time (it may be starting).
    pub fatal: bool,
}

/// Records the client's errors (librdkafka reports a failed TLS handshake or SASL login there).
#[derive(Default)]
struct ErrorRecorder(std::sync::Mutex<Option<(KafkaError, String)>>);

impl rdkafka::ClientContext for ErrorRecorder {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(error = %error, reason, "Kafka client error while connecting");
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((error, reason.to_owned()));
    }

    // librdkafka reports a failed login or handshake in its log (from its own threads) at once.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, log_message, "Kafka client log while connecting");
        use rdkafka::config::RDKafkaLogLevel as L;
        if matches!(level, L::Emerg | L::Alert | L::Critical | L::Error) {
            let error = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((error, log_message.to_owned()));
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ErrorRecorder {}

/// Whether a client error means the settings are wrong (credentials, certificates), not that the
/// broker is briefly away: no retry can fix it.
fn is_fatal(error: &KafkaError, reason: &str) -> bool {
    let code = error.rdkafka_error_code();
    matches!(
        code,
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed | RDKafkaErrorCode::SSL)
    ) || reason.contains("SSL handshake failed")
        || reason.contains("certificate verify failed")
        || reason.contains("SASL authentication error")
        || reason.contains("Authentication failed")
}

/// Connects once and fetches the cluster's metadata within `timeout`, so a wrong password, an
/// untrusted certificate or an unreachable broker stops a command at its start with the client's
/// reason (not an endless retry). Blocking: call it off the async runtime.
pub fn check_connection(kafka: &KafkaArgs, timeout: Duration) -> Result<(), ConnectError> {
    use rdkafka::consumer::Consumer as _;
    let fail = |reason: String, fatal: bool| ConnectError { brokers: kafka.brokers.clone(), reason, fatal };
    let client: rdkafka::consumer::BaseConsumer<ErrorRecorder> =
        kafka.client_config().create_with_context(ErrorRecorder::default()).map_err(|e| fail(e.to_string(), true))?;
    let started = std::time::Instant::now();
    let mut last: Option<(KafkaError, String)> = None;
    loop {
        let attempt = client.fetch_metadata(None, Duration::from_millis(500));
        let _ = client.poll(Duration::from_millis(50)); // serves the client's error events
        if let Some(seen) = client.context().0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            last = Some(seen);
        }
        match (attempt, &last) {
            (Ok(_), _) => return Ok(()),
            (Err(_), Some((error, reason))) if is_fatal(error, reason) => {
                return Err(fail(format!("{error}: {reason}"), true));
            }
            (Err(e), seen) if started.elapsed() >= timeout => {
                let detail = seen.as_ref().map(|(error, reason)| format!(" ({error}: {reason})")).unwrap_or_default();
                return Err(fail(format!("no metadata within {timeout:?}: {e}{detail}"), false));
            }
            _ => {}
        }
    }
}

/// Drops a Kafka client on a thread of its own; the future resolves once it is gone. A group
/// consumer's drop closes it — leaves the group, waiting on the broker: seconds, or as long as a
/// request in flight takes to time out while the broker is down or hung — and must never run on an
/// async worker: with every worker of the runtime blocked in such a close (two prices consumers on
/// a two-core machine), no Postgres query or timer of the runtime makes progress meanwhile.
/// Callers bound the wait (a timeout); an abandoned close ends with the process.
pub fn close_off_runtime<T: Send + 'static>(client: T, what: &str) -> impl std::future::Future<Output = ()> + use<T> {
    let (done, closed) = tokio::sync::oneshot::channel::<()>();
    let close = move || {
        drop(client);
        let _ = done.send(());
    };
    if let Err(e) = std::thread::Builder::new().name(format!("close {what}")).spawn(close) {
        // The closure went with the failed spawn: the client was closed here, on this thread.
        tracing::warn!(error = %e, what, "cannot start a thread to close the Kafka client");
    }
    async move {
        let _ = closed.await;
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
    let min_insync: Vec<String> = specs.iter().map(|s| s.min_insync.to_string()).collect();
    let configs: Vec<Vec<(&str, &str)>> = specs
        .iter()
        .zip(&min_insync)
        .map(|(s, min)| {
            let mut config = vec![];
            if s.compacted {
                config.push(("cleanup.policy", "compact"));
            }
            if s.min_insync > 0 {
                config.push(("min.insync.replicas", min.as_str()));
            }
            config
        })
        .collect();
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

/// How far an existing topic is from what tradeflow would create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicFinding {
    pub topic: String,
    /// It breaks a guarantee (the commands refuse to go on); otherwise a warning.
    pub error: bool,
    pub message: String,
}

/// Compares the existing topics with `specs`: cleanup policy (an error when it breaks a guarantee:
/// a compacted `trades` loses trades, an uncompacted `summaries` or `prices` grows without bound
/// and makes every dashboard start replay it all), partitions, replication and
/// `min.insync.replicas` (warnings).
pub async fn check_topics(kafka: &KafkaArgs, specs: &[TopicSpec]) -> Result<Vec<TopicFinding>, TopicError> {
    use rdkafka::admin::ResourceSpecifier;
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().map_err(TopicError::Client)?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let resources: Vec<ResourceSpecifier<'_>> = specs.iter().map(|s| ResourceSpecifier::Topic(&s.name)).collect();
    let configs = admin.describe_configs(&resources, &options).await.map_err(TopicError::Request)?;
    let mut findings = Vec::new();
    for (spec, config) in specs.iter().zip(configs) {
        let finding = |error: bool, message: String| TopicFinding { topic: spec.name.clone(), error, message };
        let Ok(config) = config else { continue };
        let value = |name: &str| config.get(name).and_then(|e| e.value.clone()).unwrap_or_default();
        let compacted = value("cleanup.policy").split(',').any(|p| p.trim() == "compact");
        if spec.compacted && !compacted {
            findings.push(finding(true, format!("cleanup.policy={} but it must be compacted: readers rebuild their state from it, and it would grow without bound", value("cleanup.policy"))));
        } else if !spec.compacted && compacted {
            findings.push(finding(
                true,
                format!(
                    "cleanup.policy={} but it must not be compacted: compaction would delete records",
                    value("cleanup.policy")
                ),
            ));
        }
        if spec.min_insync > 0 && value("min.insync.replicas") != spec.min_insync.to_string() {
            findings.push(finding(
                false,
                format!("min.insync.replicas={}, asked for {}", value("min.insync.replicas"), spec.min_insync),
            ));
        }
        let metadata =
            admin.inner().fetch_metadata(Some(&spec.name), Duration::from_secs(30)).map_err(TopicError::Request)?;
        for topic in metadata.topics().iter().filter(|t| t.error().is_none()) {
            let partitions = topic.partitions().len() as i32;
            if partitions > 0 && partitions != spec.partitions {
                findings.push(finding(false, format!("{partitions} partitions, tradeflow creates {} (the key → partition mapping of existing records stays as it is)", spec.partitions)));
            }
            let replicas = topic.partitions().iter().map(|p| p.replicas().len() as i32).min().unwrap_or(0);
            if spec.replication > 0 && replicas < spec.replication {
                findings.push(finding(false, format!("replication factor {replicas}, asked for {}", spec.replication)));
            }
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_back_off_briefly_on_a_full_queue_unless_told_otherwise() {
        let kafka = KafkaArgs::new("127.0.0.1:1");
        let config = kafka.consumer_config();
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("100"));
        let tuned = KafkaArgs {
            kafka_options: vec![KafkaOptions::parse("fetch.queue.backoff.ms=200").unwrap()],
            ..KafkaArgs::new("127.0.0.1:1")
        };
        assert_eq!(tuned.consumer_config().get("fetch.queue.backoff.ms"), Some("200"));
        assert_eq!(tuned.client_config().get("socket.nagle.disable"), Some("true"));
    }

    #[test]
    fn a_comma_starts_a_new_setting_only_before_another_key() {
        let pairs =
            |s: &str| KafkaOptions::parse(s).map(|o| o.0.into_iter().map(|o| (o.key, o.value)).collect::<Vec<_>>());
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(pairs("debug=broker,eos"), Ok(vec![kv("debug", "broker,eos")]));
        assert_eq!(pairs("linger.ms=2,acks=all"), Ok(vec![kv("linger.ms", "2"), kv("acks", "all")]));
        assert_eq!(
            pairs("debug=eos,broker,sasl.username=a,b"),
            Ok(vec![kv("debug", "eos,broker"), kv("sasl.username", "a,b")])
        );
        assert!(pairs("broker,eos").is_err(), "no key at all");
        assert!(pairs("linger.ms=2,bootstrap.servers=x:1").is_err(), "a managed setting stays refused");
    }
}
