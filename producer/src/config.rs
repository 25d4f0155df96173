//! Command-line configuration (flags with env-var fallbacks).

use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use clap::Args;
use tradeflow_core::ClientId;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::topics::TopicArgs;

use crate::log_formats::LogFormat;

/// The pricing rule of `tradeflow producer --prices` (applied by [`crate::trade_prices`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PriceModel {
    /// Near the random walk of the price feed (the default).
    #[default]
    Walk,
    /// Uniform 0.00–999.99, unrelated to any mark (the original system).
    Uniform,
}

/// `tradeflow producer`
#[derive(Args, Clone, Debug)]
pub struct ProducerArgs {
    /// Log directory (created with its parents).
    #[arg(long, env = "TRADE_LOG_DIR", default_value = "./logs")]
    pub dir: PathBuf,
    /// Client ids, comma-separated (the seed's TRADE_LOG_CID holds one).
    #[arg(long, env = "TRADE_LOG_CID", value_delimiter = ',', default_value = "1")]
    pub clients: Vec<ClientId>,
    /// Trades per second per client (default: uniform 10–20 each second, as the original feed).
    #[arg(long, env = "TRADEFLOW_PRODUCER_RATE", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Stop after this many trades per client.
    #[arg(long, env = "TRADEFLOW_PRODUCER_COUNT")]
    pub count: Option<u64>,
    /// Seed for reproducible output (each client gets its own stream derived from it).
    #[arg(long, env = "TRADEFLOW_PRODUCER_SEED")]
    pub seed: Option<u64>,
    /// First activity time (`2026-11-01` or `2026-11-01T09:30:00`, in --tz). Past trades are
    /// written as fast as the disk allows, then the feed continues live. Default: now.
    #[arg(long, env = "TRADEFLOW_PRODUCER_START", value_parser = parse_start)]
    pub start: Option<NaiveDateTime>,
    /// Stop at midnight after this many days (counted from the start's date).
    #[arg(long, env = "TRADEFLOW_PRODUCER_DAYS")]
    pub days: Option<u32>,
    /// Time zone of activity times and of the midnight rollover.
    #[arg(long, env = "TRADEFLOW_TZ", default_value = "UTC")]
    pub tz: Tz,
    /// Writer tick in milliseconds: each tick writes every trade whose time has passed.
    #[arg(long, env = "TRADEFLOW_PRODUCER_TICK_MS", default_value_t = 100)]
    pub tick_ms: u64,
    /// Trade prices: `walk` (near the price feed's random walk, ±0.05 %, two decimals) or `uniform`
    /// (0.00–999.99, the original system's).
    #[arg(long, env = "TRADEFLOW_PRODUCER_PRICES", value_enum, default_value_t = PriceModel::Walk)]
    pub prices: PriceModel,
    /// Seed of the walk (the price feed's variable: one setting makes both walk one path).
    /// Default: --seed.
    #[arg(long, env = "TRADEFLOW_PRICES_SEED")]
    pub price_seed: Option<u64>,
    /// Milliseconds of activity time per step of the walk (the price feed's tick interval).
    #[arg(long, env = "TRADEFLOW_PRICES_INTERVAL_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub price_interval_ms: u64,
    /// Log format: `seed` (SPEC §1), or an example mapping's (`csv`: examples/mappings/csv.toml,
    /// `jsonl`: examples/mappings/jsonl.toml; read them with `--mapping` that file).
    #[arg(long, env = "TRADEFLOW_PRODUCER_FORMAT", value_enum, default_value_t = LogFormat::Seed)]
    pub format: LogFormat,
}

impl ProducerArgs {
    /// Defaults for `clients` writing into `dir` (what tests and the library use).
    pub fn new(dir: impl Into<PathBuf>, clients: Vec<ClientId>) -> Self {
        Self {
            dir: dir.into(),
            clients,
            rate: None,
            count: None,
            seed: None,
            start: None,
            days: None,
            tz: Tz::UTC,
            tick_ms: 100,
            prices: PriceModel::Walk,
            price_seed: None,
            price_interval_ms: 100,
            format: LogFormat::Seed,
        }
    }
}

/// `tradeflow prices`
#[derive(Args, Clone, Debug)]
pub struct PricesArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Milliseconds between ticks (every symbol moves each tick).
    #[arg(long, env = "TRADEFLOW_PRICES_INTERVAL_MS", default_value_t = 100)]
    pub interval_ms: u64,
    /// Symbols, comma-separated.
    #[arg(long, env = "TRADEFLOW_SYMBOLS", value_delimiter = ',', default_value = "BANKNIFTY,AAPL,AMZN,FB,GOOG")]
    pub symbols: Vec<String>,
    /// Stop after this many ticks.
    #[arg(long, env = "TRADEFLOW_PRICES_COUNT")]
    pub count: Option<u64>,
    /// Seed for a reproducible walk.
    #[arg(long, env = "TRADEFLOW_PRICES_SEED")]
    pub seed: Option<u64>,
    /// Exit with an error (for the supervisor to restart the feed) when no tick has been delivered
    /// for this many seconds: the broker away that long, or a wedged client. More than
    /// `--interval-ms` plus the 5 s a tick may take to be delivered.
    #[arg(long, env = "TRADEFLOW_PRICES_MAX_STALL_SECS", default_value_t = 60)]
    pub max_stall_secs: u64,
}

pub fn parse_start(s: &str) -> Result<NaiveDateTime, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(t);
        }
    }
    Err(format!("{s:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.fff]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_forms() {
        assert_eq!(parse_start("2026-11-01").unwrap().to_string(), "2026-11-01 00:00:00");
        assert_eq!(parse_start("2026-11-01T09:30:00.5").unwrap().to_string(), "2026-11-01 09:30:00.500");
        assert!(parse_start("01/11/2026").is_err());
    }
}
