//! Command-line configuration (flags with env-var fallbacks).

use std::net::SocketAddr;

use clap::Args;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::topics::TopicArgs;

/// `tradeflow aggregator`
#[derive(Args, Clone, Debug)]
pub struct AggregatorArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub retention: crate::history::RetentionArgs,
    /// Consumer group of the aggregator instances.
    #[arg(long, env = "TRADEFLOW_AGGREGATOR_GROUP", default_value = "tradeflow-aggregator")]
    pub group_id: String,
    /// Milliseconds between snapshots to Postgres.
    #[arg(long, env = "TRADEFLOW_SNAPSHOT_INTERVAL_MS", default_value_t = 10_000)]
    pub snapshot_interval_ms: u64,
    /// Milliseconds between the bar writer's transactions (minute price bars from `prices` into
    /// `price_bars`; at most 10,000 records each).
    #[arg(long, env = "TRADEFLOW_BARS_FLUSH_MS", default_value_t = 500)]
    pub bars_flush_ms: u64,
    /// Linger of the `summaries` producer in ms: fewer, larger batches (less broker work per
    /// change) for at most that much added latency (docs/benchmarks.md: 2 ms halves the `summaries`
    /// hop, but its soaks did not hold p99 ≤ 20 ms in every minute as 5 ms did).
    #[arg(long, env = "TRADEFLOW_CHANGELOG_LINGER_MS", default_value_t = 5)]
    pub changelog_linger_ms: u64,
    /// Compression of the `summaries` batches.
    #[arg(long, env = "TRADEFLOW_CHANGELOG_COMPRESSION", default_value = "lz4",
          value_parser = clap::builder::PossibleValuesParser::new(tradeflow_core::kafka::COMPRESSION_CODECS))]
    pub changelog_compression: String,
    /// `/metrics` and `/healthz` listen here (port 0: any free port).
    #[arg(long, env = "TRADEFLOW_AGGREGATOR_METRICS_ADDR", default_value = "127.0.0.1:9102")]
    pub metrics_addr: SocketAddr,
    /// Consumer session timeout in ms (how fast a dead instance's partitions move).
    #[arg(long, env = "TRADEFLOW_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// At shutdown (SIGINT/SIGTERM), seconds for the whole graceful stop: the final snapshot to
    /// Postgres first (after the background one in flight; retried within this time), then the
    /// `summaries` and `trades.refused` queues flushed and the group left, with what is left of
    /// it. What is not snapshotted by then is consumed again at the next start (nothing is lost or
    /// counted twice). The default stops within `docker compose stop`'s 10 s grace, also with
    /// the broker down.
    #[arg(long, env = "TRADEFLOW_AGGREGATOR_SHUTDOWN_SECS", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_secs: u64,
    /// Static group membership (Kafka's `group.instance.id`): this instance's name in the group,
    /// unique per running instance and kept across its restarts. A restarted instance rejoining
    /// under its name takes its partitions back at once instead of waiting for the dead one's
    /// session to expire (docs/benchmarks.md, recovery under load); a stopped one is not replaced
    /// before its session expires (no leave on shutdown). Two running instances with one name fence
    /// each other: the older one stops with an error (the snapshot's epoch fencing keeps the
    /// tables exact either way). Unset: dynamic membership.
    #[arg(long, env = "TRADEFLOW_AGGREGATOR_INSTANCE_ID")]
    pub instance_id: Option<String>,
}

/// `--database-url` for every command that reads or writes the snapshot tables.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// Postgres holding the snapshot tables (the aggregator and backfill migrate it at start).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// A file holding the password for `--database-url` (instead of writing it into the URL; the
    /// compose file's generated one). Its first line is used.
    #[arg(long, env = "DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<std::path::PathBuf>,
}

impl DatabaseArgs {
    /// The URL to connect with: `--database-url` with the password file's password, if one is given.
    pub fn url(&self) -> std::io::Result<String> {
        match &self.database_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)?;
                Ok(tradeflow_core::database::with_password(
                    &self.database_url,
                    text.lines().next().unwrap_or_default().trim(),
                ))
            }
            None => Ok(self.database_url.clone()),
        }
    }
}
