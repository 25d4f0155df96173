use anyhow::Context as _;

pub mod aggregator;
pub mod dashboard;
pub mod dlq;
pub mod ingestor;
pub mod mapping;
pub mod oracle;
pub mod producer;
pub mod rebase;
pub mod secrets;
pub mod topics;

/// A command that ran to its end but has to report a partial outcome with its own exit status
/// (`dlq redrive` with lines that still fail: 2), distinct from 1 (an error: nothing or not all done).
/// `main` prints the message to stderr and exits with `code`.
#[derive(Debug)]
pub struct PartialOutcome {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for PartialOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PartialOutcome {}

/// Checks at a command's start that Kafka can be reached with its settings: wrong credentials or an
/// untrusted certificate stop it with the client's reason; a broker that does not answer in time
/// is only reported (the service waits for it as it always does).
/// For a one-shot command (`dlq`, `topics`, `rebase-offsets`): Kafka must answer (cluster
/// metadata from one of the bootstrap servers) within `timeout`, else the command fails naming the
/// servers it tried — it never waits on librdkafka's own retries, which go on for minutes.
pub async fn require_kafka(
    kafka: &tradeflow_core::kafka::KafkaArgs,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let args = kafka.clone();
    tokio::task::spawn_blocking(move || tradeflow_core::kafka::check_connection(&args, timeout)).await?.with_context(
        || {
            format!(
                "Kafka at {} did not answer within {}s (bootstrap servers: KAFKA_BROKERS / --brokers)",
                kafka.brokers,
                timeout.as_secs()
            )
        },
    )
}

/// How long a one-shot command (`topics`, `init`, `rebase-offsets`) waits for Kafka to answer.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaTimeout {
    /// Seconds to wait for Kafka to answer (cluster metadata from a bootstrap server) before the
    /// command fails, naming the servers it tried (1 to 3600).
    #[arg(
        long = "timeout-secs",
        env = "TRADEFLOW_KAFKA_TIMEOUT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub secs: u64,
}

impl KafkaTimeout {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.secs)
    }
}

/// A long-running service's first contact with Kafka (up to 15 s): a fatal answer (a bad setting,
/// refused credentials) is an error; no answer yet is a warning (the service retries). `Ok(false)`:
/// a stop was asked for meanwhile — the service should exit at once, not start.
pub async fn reach_kafka(
    kafka: &tradeflow_core::kafka::KafkaArgs,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<bool> {
    let args = kafka.clone();
    let check = tokio::task::spawn_blocking(move || {
        tradeflow_core::kafka::check_connection(&args, std::time::Duration::from_secs(15))
    });
    let checked = tokio::select! {
        checked = check => checked?,
        () = shutdown.cancelled() => return Ok(false),
    };
    match checked {
        Err(e) if e.fatal => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "Kafka is not answering yet; carrying on (the service retries)");
            Ok(true)
        }
        Ok(()) => Ok(true),
    }
}
