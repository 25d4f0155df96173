//! Topic names and their layout (SPEC §2). A prefix lets tests (and side-by-side
//! deployments) use their own set of topics on one broker.

use clap::Args;

pub const TRADES: &str = "trades";
pub const TRADES_DLQ: &str = "trades.dlq";
/// Dead letters of the aggregator: records on `trades` it refuses (not a trade record, a trade
/// that cannot be applied exactly, a row Postgres refuses), with the identity, a reason code and
/// the reason in headers and the raw payload (or the row image) as value. `trades.dlq` holds the
/// ingestor's bad lines; this one holds what got past the edge and was refused downstream.
pub const TRADES_REFUSED: &str = "trades.refused";
pub const PRICES: &str = "prices";
pub const SUMMARIES: &str = "summaries";

/// The topic names in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    pub trades: String,
    pub trades_dlq: String,
    pub trades_refused: String,
    pub prices: String,
    pub summaries: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            trades: format!("{prefix}{TRADES}"),
            trades_dlq: format!("{prefix}{TRADES_DLQ}"),
            trades_refused: format!("{prefix}{TRADES_REFUSED}"),
            prices: format!("{prefix}{PRICES}"),
            summaries: format!("{prefix}{SUMMARIES}"),
        }
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self::with_prefix("")
    }
}

/// `--topic-prefix` for every command that touches topics.
#[derive(Args, Clone, Debug, Default)]
pub struct TopicArgs {
    /// Prefix for every topic name (`<prefix>trades`, `<prefix>prices`, …).
    #[arg(long, env = "TRADEFLOW_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
}

impl TopicArgs {
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }
}

/// One topic to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub compacted: bool,
    /// Replicas per partition; -1: the broker's `default.replication.factor`.
    pub replication: i32,
    /// `min.insync.replicas` of the topic; -1: the broker's default.
    pub min_insync: i32,
}

/// Partition counts: trades 12, trades.dlq and trades.refused 1, prices 3 compacted, summaries 1
/// compacted.
#[derive(Args, Clone, Debug)]
pub struct PartitionArgs {
    #[arg(long, env = "TRADEFLOW_TRADES_PARTITIONS", default_value_t = 12)]
    pub trades_partitions: i32,
    /// Partitions of each dead-letter topic (`trades.dlq`, `trades.refused`).
    #[arg(long, env = "TRADEFLOW_DLQ_PARTITIONS", default_value_t = 1)]
    pub dlq_partitions: i32,
    #[arg(long, env = "TRADEFLOW_PRICES_PARTITIONS", default_value_t = 3)]
    pub prices_partitions: i32,
    /// One: every dashboard reads all of `summaries` and per-row order rides on each change's
    /// offset, so partitions scale nothing here; one batch per produce request instead of twelve
    /// measured p99 25 vs 91 ms at 10 k trades/s on Apache Kafka (docs/benchmarks.md, latency).
    #[arg(long, env = "TRADEFLOW_SUMMARIES_PARTITIONS", default_value_t = 1)]
    pub summaries_partitions: i32,
    /// Replicas of every partition; -1 (the default) takes the broker's `default.replication.factor`
    /// (1 on a single node, 3 on the scripts' three-node cluster).
    #[arg(long, env = "TRADEFLOW_REPLICATION_FACTOR", default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics created (-1: the broker's `min.insync.replicas`). With
    /// `acks=all`, a write needs this many in-sync copies: 2 with a replication factor of 3 is the
    /// production profile (docs/operations.md).
    #[arg(long, env = "TRADEFLOW_MIN_INSYNC_REPLICAS", default_value_t = -1, allow_negative_numbers = true)]
    pub min_insync_replicas: i32,
}

impl Default for PartitionArgs {
    fn default() -> Self {
        Self {
            trades_partitions: 12,
            dlq_partitions: 1,
            prices_partitions: 3,
            summaries_partitions: 1,
            replication_factor: -1,
            min_insync_replicas: -1,
        }
    }
}

impl PartitionArgs {
    pub fn specs(&self, topics: &Topics) -> Vec<TopicSpec> {
        vec![
            TopicSpec {
                name: topics.trades.clone(),
                partitions: self.trades_partitions,
                compacted: false,
                replication: self.replication_factor,
                min_insync: self.min_insync_replicas,
            },
            TopicSpec {
                name: topics.trades_dlq.clone(),
                partitions: self.dlq_partitions,
                compacted: false,
                replication: self.replication_factor,
                min_insync: self.min_insync_replicas,
            },
            TopicSpec {
                name: topics.trades_refused.clone(),
                partitions: self.dlq_partitions,
                compacted: false,
                replication: self.replication_factor,
                min_insync: self.min_insync_replicas,
            },
            TopicSpec {
                name: topics.prices.clone(),
                partitions: self.prices_partitions,
                compacted: true,
                replication: self.replication_factor,
                min_insync: self.min_insync_replicas,
            },
            TopicSpec {
                name: topics.summaries.clone(),
                partitions: self.summaries_partitions,
                compacted: true,
                replication: self.replication_factor,
                min_insync: self.min_insync_replicas,
            },
        ]
    }
}
