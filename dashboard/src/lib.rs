//! # tradeflow-dashboard
//!
//! `tradeflow dashboard` serves a live view of the summary rows: a client enters its id (and
//! token) and watches its rows move with every trade and price tick.
//!
//! - [`source`]: reads `summaries` and `prices` (all partitions, from the beginning) into [`live`].
//! - [`feed_health`]: whether that feed flows (fed by [`feed_signals`], the consumers' librdkafka
//!   context): `/readyz`, a gauge and a `feed` frame to every subscriber when it is down.
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
pub mod feed_health;
pub mod feed_signals;
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
use crate::feed_health::FeedHealth;
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
    #[error(
        "--feed-down-after-secs {secs} is too short for --fetch-wait-ms {fetch_wait_ms}: a quiet feed's fetches are answered only every fetch wait, and seen every {stats_ms} ms; give at least {min_secs} s"
    )]
    FeedDownAfter { secs: u64, fetch_wait_ms: u64, stats_ms: u64, min_secs: u64 },
}

/// Checks that `--feed-down-after-secs` leaves room for two statistics reports beyond a quiet
/// feed's fetch wait (else a quiet feed would be judged down).
fn check_feed_down_after(secs: u64, fetch_wait_ms: u64) -> Result<std::time::Duration, DashboardError> {
    let stats_ms = feed_signals::STATS_INTERVAL_MS;
    let needed_ms = fetch_wait_ms.saturating_add(2 * stats_ms);
    if secs.saturating_mul(1000) < needed_ms {
        return Err(DashboardError::FeedDownAfter {
            secs,
            fetch_wait_ms,
            stats_ms,
            min_secs: needed_ms.div_ceil(1000),
        });
    }
    Ok(std::time::Duration::from_secs(secs))
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
    let down_after = check_feed_down_after(config.feed_down_after_secs, config.kafka.fetch_wait_ms)?;
    let metrics = Arc::new(Metrics::default());
    let feed = Arc::new(FeedHealth::new(down_after, metrics.clone()));
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
            feed: feed.clone(),
        }),
        shutdown: shutdown.clone(),
    });
    if let Some(db) = &server.db {
        let (a, b) = (live.clone(), live.clone());
        let symbols = move || a.symbols().iter().map(|s| s.to_string()).collect();
        tokio::spawn(day_open::follow(db.clone(), symbols, move |m| b.day_open.set(m), shutdown.clone()));
    }
    let topics = config.topics.topics();
    let topics = source::SourceTopics { summaries: topics.summaries, prices: topics.prices };
    tokio::spawn(feed_health::watch(feed.clone(), shutdown.clone()));
    let source = tokio::spawn(source::follow(config.kafka.clone(), topics, live, feed, shutdown.clone()));
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
    #[test]
    fn the_feed_down_bound_leaves_room_for_a_quiet_feeds_fetches() {
        assert_eq!(super::check_feed_down_after(5, 100).unwrap(), std::time::Duration::from_secs(5));
        assert!(super::check_feed_down_after(2, 0).is_ok());
        let e = super::check_feed_down_after(5, 4000).unwrap_err().to_string();
        assert!(e.contains("at least 6 s"), "{e}");
    }

    #[tokio::test]
    async fn accepted_connections_send_small_frames_at_once() {
        let listener = super::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY not inherited from the listener");
    }
}
