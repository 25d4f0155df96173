//! Command-line configuration (flags with env-var fallbacks).

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;
use tradeflow_core::ClientId;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::mapping::MappingArgs;
use tradeflow_core::topics::TopicArgs;

/// `tradeflow ingestor`
#[derive(Args, Clone, Debug)]
pub struct IngestorArgs {
    /// Log directory to watch (and the directory of every mapping source without its own `dir`).
    #[arg(long, env = "TRADE_LOG_DIR", default_value = "./logs")]
    pub dir: PathBuf,
    /// Only these client ids (comma-separated); default: every client in the directory.
    #[arg(long, env = "TRADEFLOW_INGESTOR_CLIENTS", value_delimiter = ',')]
    pub clients: Vec<ClientId>,
    /// Where the per-file cursors are kept (created if missing).
    #[arg(long, env = "TRADEFLOW_INGESTOR_STATE", default_value = "./ingestor-state")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub mapping: MappingArgs,
    /// `/metrics` and `/healthz` listen here (port 0: any free port).
    #[arg(long, env = "TRADEFLOW_INGESTOR_METRICS_ADDR", default_value = "127.0.0.1:9101")]
    pub metrics_addr: SocketAddr,
    /// Safety re-check interval in ms when file notifications work (they wake readers at once);
    /// without notifications files are polled every 10 ms.
    #[arg(long, env = "TRADEFLOW_INGESTOR_POLL_MS", default_value_t = 500)]
    pub poll_ms: u64,
    /// Producer queue limit in KiB: when full, reading pauses (bounded memory while the broker is slow).
    #[arg(long, env = "TRADEFLOW_INGESTOR_QUEUE_KB", default_value_t = 64 * 1024)]
    pub queue_kb: u64,
    /// Producer linger in ms: a few ms make fewer, larger batches under load (less broker work per
    /// trade) for at most that much added latency.
    #[arg(long, env = "TRADEFLOW_INGESTOR_LINGER_MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// Compression of the published batches (JSON records compress ~4x with lz4: fewer bytes for
    /// the broker to write, replicate and serve, for some CPU in the ingestor and the broker).
    #[arg(long, env = "TRADEFLOW_INGESTOR_COMPRESSION", default_value = "lz4",
          value_parser = clap::builder::PossibleValuesParser::new(tradeflow_core::kafka::COMPRESSION_CODECS))]
    pub compression: String,
    /// At shutdown, seconds to wait for the broker to acknowledge the lines in flight before each
    /// file's cursor is saved (lines not acknowledged by then are read again at the next start:
    /// nothing is lost). The default stops within `docker compose stop`'s 10 s grace, also with
    /// the broker down.
    #[arg(long, env = "TRADEFLOW_INGESTOR_DRAIN_SECS", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub drain_secs: u64,
    /// Republish whole historical files (`--from`/`--to`) and exit; cursors are not touched.
    #[arg(long, requires = "from")]
    pub backfill: bool,
    /// First file date to backfill (inclusive).
    #[arg(long, requires = "backfill")]
    pub from: Option<NaiveDate>,
    /// Last file date to backfill (inclusive; default: --from).
    #[arg(long, requires = "backfill")]
    pub to: Option<NaiveDate>,
}

impl IngestorArgs {
    pub fn new(dir: impl Into<PathBuf>, state_dir: impl Into<PathBuf>, kafka: KafkaArgs) -> Self {
        Self {
            dir: dir.into(),
            clients: Vec::new(),
            state_dir: state_dir.into(),
            kafka,
            topics: TopicArgs::default(),
            mapping: MappingArgs::default(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            poll_ms: 500,
            queue_kb: 64 * 1024,
            linger_ms: 5,
            compression: "lz4".into(),
            drain_secs: 7,
            backfill: false,
            from: None,
            to: None,
        }
    }

    pub fn wants(&self, client: &ClientId) -> bool {
        self.clients.is_empty() || self.clients.contains(client)
    }
}
