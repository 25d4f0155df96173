//! # tradeflow-producer
//!
//! `tradeflow producer` writes mock trade logs exactly as SPEC §1 describes: one file per client
//! per day, the mock distribution, lines written once their activity time has passed (a 100 ms
//! tick), rollover at midnight of the configured zone. `tradeflow prices` publishes a random-walk
//! price feed to `prices`.
//!
//! - [`generator`]: the seeded, reproducible stream of trades per client.
//! - [`trade_prices`]: a trade's price, near the price feed's walk (default) or uniform.
//! - [`day_file`]: the day-rolling appender (whole lines per write).
//! - [`log_formats`]: the formats it writes (`--format seed|csv|jsonl`, one per example mapping).
//! - [`trade_logs`]: `run(config, shutdown)` for the log producer.
//! - [`prices`]: `run(config, shutdown)` for the price feed.
//! - [`tick_deliveries`]: the feed's delivered / dropped ticks and its stall bound.

pub mod config;
pub mod day_file;
pub mod generator;
pub mod log_formats;
pub mod prices;
pub mod tick_deliveries;
pub mod trade_logs;
pub mod trade_prices;

pub use config::{PricesArgs, ProducerArgs};

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the Kafka producer hit a fatal error ({code:?}): {reason}")]
    Fatal { code: rdkafka::types::RDKafkaErrorCode, reason: String },
    #[error(
        "no price tick delivered for {secs} s ({dropped} dropped): the broker is unreachable or the client is wedged"
    )]
    Stalled { secs: u64, dropped: u64 },
    #[error("a client task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
