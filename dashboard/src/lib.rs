//! # tradeflow-dashboard
//!
//! `tradeflow dashboard` serves a live view of the summary rows: a client enters its id (and
//! token) and watches its rows move with every trade and price tick.
//!
//! - [`source`]: reads `summaries` and `prices` (all partitions, from the beginning) into [`live`].
//! - [`live`]: every client's rows joined with the latest mark, and its feed — one sequence of
//!   deltas and a bounded history shared by all of that client's subscribers.
//! - [`subscriber`]: a subscriber's outbox, coalescing per row so a slow browser delays only itself.
//! - [`session`]: one websocket connection speaking [`protocol`]; [`views`]: totals by symbol/account;
//!   [`positions`]: holdings across dates (the `positions` view); [`bars`] + [`bars_view`]: today's
//!   minute price bars live (the `bars` view), [`bars_rest`]: `/api/bars` from Postgres;
//!   [`day_open`]: day-open marks from Postgres for the holdings' day P&L.
//! - [`access`] / [`token`]: signed client tokens and the Origin allow-list.
//! - [`server`]: warp routes — the page (`web/`, compiled in), `/ws`, `/api/summary` ([`rest`]),
//!   `/api/series` ([`series`]: the intraday P&L/position chart's points), `/api/config`, `/healthz`,
//!   `/readyz`, `/metrics`.
//! - [`tail`]: `tradeflow tail`, a terminal client of the same protocol.

pub mod access;
pub mod bars;
pub mod bars_rest;
pub mod bars_view;
pub mod config;
pub mod day_open;
pub mod delta;
pub mod fill_bars;
pub mod http;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod positions;
pub mod protocol;
pub mod reply;
pub mod rest;
pub mod row;
pub mod series;
pub mod server;
pub mod session;
pub mod source;
pub mod subscriber;
pub mod tail;
pub mod token;
pub mod views;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::DashboardArgs;

use crate::access::Access;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::server::Server;
use crate::session::SessionContext;
use crate::token::{TokenError, TokenKey};

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("no --auth-secret (TRADEFLOW_AUTH_SECRET) given: set one, or start with --auth-off for local use")]
    NoSecret,
    #[error("bad --auth-secret: {0}")]
    Secret(#[from] TokenError),
    #[error("cannot read --auth-secret-file: {0}")]
    SecretFile(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("bad --database-url: {0}")]
    Database(#[from] sqlx::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Runs the dashboard until `shutdown` (on a multi-threaded Tokio runtime: metadata requests block
/// in place).
pub async fn run(config: DashboardArgs, shutdown: CancellationToken) -> Result<(), DashboardError> {
    let secret = config::read_secret(config.auth_secret.as_deref(), config.auth_secret_file.as_deref())
        .map_err(DashboardError::SecretFile)?;
    let key = match (&secret, config.auth_off) {
        (_, true) => None,
        (Some(secret), false) => Some(TokenKey::new(secret)?),
        (None, false) => return Err(DashboardError::NoSecret),
    };
    if key.is_none() {
        tracing::warn!("auth is OFF: every client's rows are visible to anyone who can reach the dashboard");
    }
    let database_url = match (&config.database_url, &config.database_password_file) {
        (Some(url), Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(DashboardError::SecretFile)?;
            Some(tradeflow_core::database::with_password(url, text.lines().next().unwrap_or_default().trim()))
        }
        (url, _) => url.clone(),
    };
    let db = match &database_url {
        Some(url) => Some(Arc::new(sqlx::postgres::PgPoolOptions::new().max_connections(4).connect_lazy(url)?)),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let live = Arc::new(Live::new(config.resume_window, metrics));
    let listener = listen(config.listen).map_err(|source| DashboardError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| DashboardError::Listen { addr: config.listen, source })?;
    let gate = limits::Gate::new(config.limits.clone());
    let server = Arc::new(Server {
        listen: addr,
        live: live.clone(),
        gate: gate.clone(),
        access: Access::new(key.clone(), config.allowed_origins.clone()),
        db,
        sessions: Arc::new(SessionContext {
            live: live.clone(),
            auth_off: key.is_none(),
            max_message_bytes: config.max_message_bytes,
            gate,
        }),
        shutdown: shutdown.clone(),
    });
    if let Some(db) = &server.db {
        let (a, b) = (live.clone(), live.clone());
        let symbols = move || a.symbols().iter().map(|s| s.to_string()).collect();
        tokio::spawn(day_open::follow(db.clone(), symbols, move |m| b.day_open.set(m), shutdown.clone()));
    }
    let topics = config.topics.topics();
    let source =
        tokio::spawn(source::follow(config.kafka.clone(), topics.summaries, topics.prices, live, shutdown.clone()));
    tracing::info!(url = %format!("http://{addr}/"), auth = key.is_some(), "dashboard listening");
    let header_timeout = std::time::Duration::from_secs(config.limits.handshake_timeout_secs.max(1));
    http::serve(server::routes(server), listener, header_timeout, shutdown.clone()).await;
    shutdown.cancel();
    match source.await {
        Ok(result) => result?,
        Err(e) => tracing::warn!(error = %e, "source task failed"),
    }
    Ok(())
}

/// Binds the HTTP / websocket listener with `TCP_NODELAY` set, which accepted connections inherit
/// (Linux): a small websocket frame is sent at once instead of waiting for the browser's delayed
/// ACK of the previous one (Nagle) — it showed as ~40 ms tails in the latency benchmark.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn accepted_connections_send_small_frames_at_once() {
        let listener = super::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY not inherited from the listener");
    }
}
