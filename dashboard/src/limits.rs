//! What one client (or everyone) may cost the dashboard: sockets per client and in total, subscribes
//! per socket, how long a socket may stay without a subscription, REST requests per client. Each
//! refusal is counted in `/metrics` and answered plainly (HTTP 429, an error frame `rate_limited`,
//! or a close 1008 with the reason).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

/// `tradeflow dashboard` limits.
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// Websockets open at once, in total.
    #[arg(long, env = "TRADEFLOW_MAX_SOCKETS", default_value_t = 10_000)]
    pub max_sockets: usize,
    /// Websockets open at once per client (the token's client; with auth off only the total applies).
    #[arg(long, env = "TRADEFLOW_MAX_SOCKETS_PER_CLIENT", default_value_t = 64)]
    pub max_sockets_per_client: usize,
    /// Subscribes a socket may send per minute (each costs a snapshot), bursts of up to that many.
    #[arg(long, env = "TRADEFLOW_SUBSCRIBES_PER_MINUTE", default_value_t = 30)]
    pub subscribes_per_minute: u32,
    /// Seconds a socket may stay open without a subscription (after connecting or unsubscribing).
    #[arg(long, env = "TRADEFLOW_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub idle_timeout_secs: u64,
    /// Seconds a connection may take to send its request head (the websocket handshake included).
    #[arg(long, env = "TRADEFLOW_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    pub handshake_timeout_secs: u64,
    /// REST requests per client per minute (`/api/summary`, `/api/series`; as-of and series queries reach Postgres).
    #[arg(long, env = "TRADEFLOW_REST_PER_MINUTE", default_value_t = 120)]
    pub rest_per_minute: u32,
}

impl Default for LimitArgs {
    fn default() -> Self {
        Self {
            max_sockets: 10_000,
            max_sockets_per_client: 64,
            subscribes_per_minute: 30,
            idle_timeout_secs: 30,
            handshake_timeout_secs: 10,
            rest_per_minute: 120,
        }
    }
}

/// A token bucket: `capacity` tokens, refilled at `capacity` per minute.
#[derive(Debug)]
pub struct Bucket {
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn per_minute(capacity: u32) -> Self {
        Self { capacity: f64::from(capacity), tokens: f64::from(capacity), at: Instant::now() }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.capacity / 60.0).min(self.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The shared counts behind the limits.
pub struct Gate {
    pub limits: LimitArgs,
    open: Mutex<(usize, HashMap<String, usize>)>,
    rest: Mutex<HashMap<String, Bucket>>,
    pub refused_sockets: AtomicU64,
    pub rate_limited: AtomicU64,
    pub idle_closed: AtomicU64,
    pub rest_limited: AtomicU64,
}

/// A socket's place under the limits, given back when dropped.
pub struct Permit {
    gate: Arc<Gate>,
    client: Option<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(client) = &self.client
            && let Some(n) = open.1.get_mut(client)
        {
            *n -= 1;
            if *n == 0 {
                open.1.remove(client);
            }
        }
    }
}

impl Gate {
    pub fn new(limits: LimitArgs) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::default(),
            rest: Mutex::default(),
            refused_sockets: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            rest_limited: AtomicU64::new(0),
        })
    }

    /// A socket for `client` (`None` with auth off: no client is known, only the total applies),
    /// or why not.
    pub fn admit(self: &Arc<Self>, client: Option<&str>) -> Result<Permit, String> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mine = client.map_or(0, |c| open.1.get(c).copied().unwrap_or(0));
        let refusal = if open.0 >= self.limits.max_sockets {
            Some(format!("the dashboard has {} sockets open, its limit", open.0))
        } else {
            client
                .filter(|_| mine >= self.limits.max_sockets_per_client)
                .map(|client| format!("client {client} has {mine} sockets open, the limit per client"))
        };
        if let Some(why) = refusal {
            self.refused_sockets.fetch_add(1, Relaxed);
            return Err(why);
        }
        open.0 += 1;
        if let Some(client) = client {
            *open.1.entry(client.to_owned()).or_default() += 1;
        }
        Ok(Permit { gate: self.clone(), client: client.map(str::to_owned) })
    }

    /// One REST request of `client`: false when over its rate.
    pub fn rest(&self, client: &str) -> bool {
        let mut rest = self.rest.lock().unwrap_or_else(|e| e.into_inner());
        if rest.len() > 100_000 {
            // Forget the clients quiet for a minute: their buckets have refilled.
            rest.retain(|_, b| b.at.elapsed() < Duration::from_secs(60));
            if rest.len() > 100_000 {
                rest.clear(); // memory stays bounded; the limit restarts for everyone
            }
        }
        let ok =
            rest.entry(client.to_owned()).or_insert_with(|| Bucket::per_minute(self.limits.rest_per_minute)).take();
        if !ok {
            self.rest_limited.fetch_add(1, Relaxed);
        }
        ok
    }

    /// The refusals, for `/metrics`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, help, value) in [
            (
                "tradeflow_dashboard_sockets_refused_total",
                "Websockets refused at the handshake: too many open (HTTP 429).",
                &self.refused_sockets,
            ),
            (
                "tradeflow_dashboard_subscribes_rate_limited_total",
                "Subscribes refused over the per-socket rate (error frame rate_limited).",
                &self.rate_limited,
            ),
            (
                "tradeflow_dashboard_idle_closed_total",
                "Sockets closed after the idle timeout without a subscription (1008).",
                &self.idle_closed,
            ),
            (
                "tradeflow_dashboard_rest_rate_limited_total",
                "REST requests refused over the per-client rate (HTTP 429).",
                &self.rest_limited,
            ),
        ] {
            tradeflow_core::metrics::header(out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.idle_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_bounded_per_client_and_in_total_and_given_back() {
        let gate = Gate::new(LimitArgs { max_sockets: 3, max_sockets_per_client: 2, ..LimitArgs::default() });
        let a1 = gate.admit(Some("a")).expect("a1");
        let _a2 = gate.admit(Some("a")).expect("a2");
        assert!(gate.admit(Some("a")).is_err(), "a third for a");
        let _b1 = gate.admit(Some("b")).expect("b1");
        assert!(gate.admit(Some("c")).is_err(), "a fourth in total");
        drop(a1);
        assert!(gate.admit(None).is_ok(), "a socket given back (auth off: the total only)");
        assert_eq!(gate.refused_sockets.load(Relaxed), 2);
    }

    #[test]
    fn a_bucket_allows_a_burst_then_refuses() {
        let mut b = Bucket::per_minute(3);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
    }
}
