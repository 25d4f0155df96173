//! Command-line configuration of `tradeflow dashboard` (flags with env-var fallbacks).

use std::net::SocketAddr;

use clap::Args;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::topics::TopicArgs;

/// `tradeflow dashboard`
#[derive(Args, Clone, Debug)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Address the page, the websocket (`/ws`), `/api/summary` and the ops endpoints listen on.
    #[arg(long, env = "TRADEFLOW_DASHBOARD_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Postgres with the snapshot tables, for `/api/summary?as_of=…`, `/api/bars` and the day-open
    /// marks of the day P&L (without it, as-of and bars queries get 503, and day P&L needs a flat open).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A file holding the password for `--database-url` (its first line).
    #[arg(long, env = "DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<std::path::PathBuf>,
    /// Secret that signs and checks client tokens (at least 16 bytes; same value for `tradeflow token`).
    /// For rotation, a key ring: `kid:secret` entries separated by commas, the first signing.
    #[arg(long, env = "TRADEFLOW_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// A file holding the secret instead (first line; e.g. the one `tradeflow init --auth-secret-file` generates).
    #[arg(long, env = "TRADEFLOW_AUTH_SECRET_FILE", conflicts_with = "auth_secret")]
    pub auth_secret_file: Option<std::path::PathBuf>,
    /// Serve every client without tokens. For local use only; the page shows a banner.
    #[arg(long, env = "TRADEFLOW_AUTH_OFF", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auth_off: bool,
    /// Origins (scheme://host[:port]) allowed to open the websocket besides the dashboard's own; `*` allows any.
    #[arg(long, env = "TRADEFLOW_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Largest websocket message a subscriber may send, in bytes (larger ones get an error frame).
    #[arg(long, env = "TRADEFLOW_MAX_MESSAGE_BYTES", default_value_t = 4096)]
    pub max_message_bytes: usize,
    /// Deltas kept per client for resuming subscribers (older resumes get a fresh snapshot).
    #[arg(long, env = "TRADEFLOW_RESUME_WINDOW", default_value_t = 4096)]
    pub resume_window: usize,
    /// Seconds without a fetch answered (librdkafka's statistics: none, even empty ones of a quiet
    /// feed) before the upstream feed counts as down: `/readyz` 503, subscribers told, the page
    /// stale. All brokers reported down takes it down at once. 3–300, and at least `--fetch-wait-ms`
    /// + 2 s (with the default fetch wait, 100 ms: 3 s).
    #[arg(long, env = "TRADEFLOW_FEED_DOWN_AFTER_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(3..=300))]
    pub feed_down_after_secs: u64,
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,
}

/// `tradeflow token`
#[derive(Args, Clone, Debug)]
pub struct TokenArgs {
    /// The client id the token entitles to.
    #[arg(long)]
    pub client: String,
    /// Hours until the token expires.
    #[arg(long, env = "TRADEFLOW_TOKEN_TTL_HOURS", default_value_t = 24)]
    pub ttl_hours: u32,
    /// The dashboard's signing secret.
    #[arg(long, env = "TRADEFLOW_AUTH_SECRET", hide_env_values = true, required_unless_present = "auth_secret_file")]
    pub auth_secret: Option<String>,
    /// A file holding the secret instead (the dashboard's `--auth-secret-file`).
    #[arg(long, env = "TRADEFLOW_AUTH_SECRET_FILE", conflicts_with = "auth_secret")]
    pub auth_secret_file: Option<std::path::PathBuf>,
}

/// The secret given inline or in a file (every non-empty line: one secret, or `kid:secret` entries
/// of a key ring, the first signing).
pub fn read_secret(inline: Option<&str>, file: Option<&std::path::Path>) -> std::io::Result<Option<String>> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.to_owned())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)?;
            let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            Ok(Some(lines.join(",")))
        }
        (None, None) => Ok(None),
    }
}

/// `tradeflow tail`
#[derive(Args, Clone, Debug)]
pub struct TailArgs {
    /// The client to watch.
    #[arg(long)]
    pub client: String,
    /// Only this account's rows.
    #[arg(long)]
    pub account: Option<String>,
    /// Only this symbol's rows.
    #[arg(long)]
    pub symbol: Option<String>,
    /// `rows` (default), `totals_by_symbol`, `totals_by_account` or `positions` (holdings across dates).
    #[arg(long, default_value = "rows")]
    pub view: String,
    /// The dashboard's websocket URL.
    #[arg(long, env = "TRADEFLOW_DASHBOARD_WS", default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// A token for the client (`tradeflow token --client …`); not needed when the dashboard runs with auth off.
    #[arg(long, env = "TRADEFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the raw JSON frames instead of one summary line each.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many frames (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub frames: u64,
}
