//! Ingestor metrics (Prometheus text) and the `/metrics` + `/healthz` endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct Metrics {
    pub lines_read: AtomicU64,
    pub lines_published: AtomicU64,
    pub bytes_read: AtomicU64,
    pub truncations: AtomicU64,
    /// Header lines of delimited files (mapping `header = true`): read, not trades.
    pub header_lines: AtomicU64,
    dead_lettered: Mutex<BTreeMap<&'static str, u64>>,
    bytes_behind: Mutex<BTreeMap<String, u64>>,
    publish_latency: tradeflow_core::metrics::Histogram,
    /// A fill's activity time → its record handed to the producer (the first hop).
    pub fill_age: tradeflow_core::metrics::Histogram,
}

impl Metrics {
    pub fn dead_lettered(&self, reason_code: &'static str) {
        *self.dead_lettered.lock().unwrap_or_else(|e| e.into_inner()).entry(reason_code).or_default() += 1;
    }

    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }

    pub fn set_bytes_behind(&self, file: &str, behind: u64) {
        self.bytes_behind.lock().unwrap_or_else(|e| e.into_inner()).insert(file.to_owned(), behind);
    }

    pub fn observe_publish_latency(&self, latency: Duration) {
        self.publish_latency.observe(latency);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            tradeflow_core::metrics::header(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {value}");
        };
        counter(
            "tradeflow_ingestor_lines_read_total",
            "Complete lines read from trade logs.",
            self.lines_read.load(Relaxed),
        );
        counter(
            "tradeflow_ingestor_lines_published_total",
            "Trade records acknowledged by the broker.",
            self.lines_published.load(Relaxed),
        );
        counter(
            "tradeflow_ingestor_header_lines_total",
            "Header lines of delimited trade logs (skipped: not trades).",
            self.header_lines.load(Relaxed),
        );
        counter("tradeflow_ingestor_bytes_read_total", "Bytes read from trade logs.", self.bytes_read.load(Relaxed));
        counter(
            "tradeflow_ingestor_file_resets_total",
            "Files found truncated, rewritten or recreated (re-read from the start).",
            self.truncations.load(Relaxed),
        );
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_ingestor_lines_dead_lettered_total",
            "Bad lines sent to the dead-letter topic.",
            "counter",
        );
        for (reason, n) in self.dead_lettered.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "tradeflow_ingestor_lines_dead_lettered_total{{reason=\"{reason}\"}} {n}");
        }
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_ingestor_bytes_behind",
            "Bytes of a file not yet acknowledged by the broker.",
            "gauge",
        );
        for (file, n) in self.bytes_behind.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "tradeflow_ingestor_bytes_behind{{file=\"{file}\"}} {n}");
        }
        self.publish_latency.render(
            &mut out,
            "tradeflow_ingestor_publish_latency_seconds",
            "From handing a record to the producer to the broker's acknowledgement (timed from the start of its chunk: the lines of one read).",
        );
        self.fill_age.render(
            &mut out,
            "tradeflow_ingestor_fill_age_seconds",
            "Age of each fill when its record is handed to the producer: now minus its activity time (read as UTC). \
             Where lines are written as their activity time passes (SPEC), this is append → produce: noticing the \
             append, reading, parsing and encoding.",
        );
        out
    }
}

/// Serves `/metrics` and `/healthz` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let render = move |path: &str| match path {
        "/metrics" => Some(metrics.render()),
        "/healthz" => Some("ok\n".to_owned()),
        _ => None,
    };
    tokio::spawn(tradeflow_core::http::serve_get(listener, render, shutdown));
    Ok(bound)
}
