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
    /// NUL runs skipped where a line would start, and their bytes.
    pub nul_runs: AtomicU64,
    pub nul_bytes: AtomicU64,
    /// Failed attempts to open or read a file (each is retried with backoff).
    pub file_errors: AtomicU64,
    /// Files that cannot be read right now.
    unreadable: Mutex<BTreeMap<String, String>>,
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

    pub fn nul_run(&self, len: u64) {
        self.nul_runs.fetch_add(1, Relaxed);
        self.nul_bytes.fetch_add(len, Relaxed);
    }

    /// `file` cannot be read (`why`), or can again (`None`).
    pub fn set_unreadable(&self, file: &str, why: Option<String>) {
        let mut map = self.unreadable.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(why) => {
                self.file_errors.fetch_add(1, Relaxed);
                map.insert(file.to_owned(), why);
            }
            None => {
                map.remove(file);
            }
        }
    }

    /// The files that cannot be read right now, with why.
    pub fn unreadable(&self) -> BTreeMap<String, String> {
        self.unreadable.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        counter(
            "tradeflow_ingestor_nul_runs_total",
            "Runs of NUL bytes skipped where a line would start (each also dead-lettered with its offset and length).",
            self.nul_runs.load(Relaxed),
        );
        counter("tradeflow_ingestor_nul_bytes_total", "Bytes of those NUL runs.", self.nul_bytes.load(Relaxed));
        counter(
            "tradeflow_ingestor_file_errors_total",
            "Failed attempts to open or read a log file (a directory, FIFO, no permission…); each retried with backoff.",
            self.file_errors.load(Relaxed),
        );
        let unreadable = self.unreadable();
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_ingestor_unreadable_files",
            "Files named like trade logs that cannot be read right now (the others keep flowing).",
            "gauge",
        );
        let _ = writeln!(out, "tradeflow_ingestor_unreadable_files {}", unreadable.len());
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
