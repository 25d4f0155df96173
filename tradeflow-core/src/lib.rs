//! # tradeflow-core
//!
//! The facts every tradeflow service agrees on (see `SPEC.md` in the shared folder):
//!
//! - [`trade`]: the typed [`Trade`](trade::Trade) of the mapping spec, with [`ClientId`](client::ClientId).
//! - [`edge`]: the edge contract (characters, lengths, precision, ranges) every part applies;
//!   [`exact`]: decimal sums and products that refuse instead of rounding.
//! - [`log_format`]: the `Key:Value|…` trade-log line (parser and renderer) and the
//!   `tradeLog_client<CID>.<YYYY.MM.DD>.log` file name.
//! - [`summary`]: the per-(trade_date, client, account, symbol) summary row and its math;
//!   [`fill_bars`]: its fills per UTC minute (count, quantity by side, VWAP).
//! - [`pnl`]: a row's realized / unrealized / total P&L, order-independent, exact.
//! - [`holdings`]: one row per (client, account, symbol) across trade dates: position, average cost, P&L;
//!   [`day_pnl`]: its P&L on one day against the day-open mark from the minute price [`bars`].
//! - [`oracle`]: the expected summary rows computed straight from log files.
//! - [`partition`]: Java-compatible murmur2 partitioning (what `partitioner=murmur2_random` does).
//! - [`topics`], [`kafka`]: topic names, partition counts, client settings, topic creation.
//! - [`price`]: the market price tick published on `prices`; [`changelog`]: the `summaries` record.
//! - [`record`]: trade records (with their identity) and dead-letter headers.
//! - [`telemetry`], [`shutdown`], [`metrics`], [`http`]: tracing to stderr, Ctrl-C / SIGTERM →
//!   `CancellationToken`, Prometheus text and the ops endpoints.

pub mod bars;
pub mod changelog;
pub mod client;
pub mod database;
pub mod day_pnl;
pub mod edge;
pub mod exact;
pub mod fill_bars;
pub mod group_coordinator;
pub mod holdings;
pub mod http;
pub mod kafka;
pub mod log_format;
pub mod mapping;
pub mod metrics;
pub mod oracle;
pub mod partition;
pub mod pnl;
pub mod price;
pub mod record;
pub mod shutdown;
pub mod summary;
pub mod telemetry;
pub mod topics;
pub mod trade;

pub use client::ClientId;
pub use trade::{Side, Trade};
