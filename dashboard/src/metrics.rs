//! Dashboard metrics (Prometheus text).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub subscribers: AtomicU64,
    pub messages_sent: AtomicU64,
    pub coalesced: AtomicU64,
    pub snapshots: AtomicU64,
    pub resumes: AtomicU64,
    pub replayed: AtomicU64,
    pub error_frames: AtomicU64,
    pub refused_token: AtomicU64,
    pub refused_origin: AtomicU64,
    pub summaries: AtomicU64,
    pub stale_versions: AtomicU64,
    pub price_ticks: AtomicU64,
    /// Price ticks refused by `PriceTick::check` (dated too far ahead, a negative or absurd price).
    pub price_ticks_refused: AtomicU64,
    pub bad_records: AtomicU64,
    pub rest_requests: AtomicU64,
    pub rest_refused: AtomicU64,
    pub ready: AtomicU64,
    /// 1 while the upstream feed is down (crate::feed_health), else 0.
    pub feed_down: AtomicU64,
    /// When the feed was last known to flow, in Unix seconds, while it is down; 0 while up.
    pub feed_down_since: AtomicU64,
    /// Times the feed went down.
    pub feed_outages: AtomicU64,
    /// Age of each summary change when read (now − its Kafka timestamp).
    pub summary_age: tradeflow_core::metrics::Histogram,
    /// A row change offered to a subscriber's outbox → the frame carrying it written to the socket.
    pub fanout: tradeflow_core::metrics::Histogram,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        tradeflow_core::metrics::samples(
            &mut out,
            "tradeflow_dashboard_",
            &[
                ("subscribers", "Websocket subscriptions open.", &self.subscribers, "gauge"),
                ("messages_sent_total", "Frames sent to subscribers.", &self.messages_sent, "counter"),
                (
                    "coalesced_updates_total",
                    "Row updates merged into a newer pending version for a slow subscriber.",
                    &self.coalesced,
                    "counter",
                ),
                (
                    "snapshots_sent_total",
                    "Snapshot frames sent (subscribe, or resume from too far back).",
                    &self.snapshots,
                    "counter",
                ),
                (
                    "resumes_total",
                    "Subscriptions resumed from a sequence number without a snapshot.",
                    &self.resumes,
                    "counter",
                ),
                ("replayed_deltas_total", "Deltas replayed to resuming subscribers.", &self.replayed, "counter"),
                (
                    "error_frames_total",
                    "Error frames sent for malformed, oversized or forbidden requests.",
                    &self.error_frames,
                    "counter",
                ),
                ("summaries_total", "Summary changes read from the changelog.", &self.summaries, "counter"),
                (
                    "stale_versions_total",
                    "Summary changes ignored because a newer version of the row is held.",
                    &self.stale_versions,
                    "counter",
                ),
                ("price_ticks_total", "Price ticks applied.", &self.price_ticks, "counter"),
                (
                    "price_ticks_refused_total",
                    "Price ticks refused: dated more than 5 s ahead of this host's clock, or a price outside 0..=10^9 (logged with partition and offset).",
                    &self.price_ticks_refused,
                    "counter",
                ),
                (
                    "bad_records_total",
                    "Records on summaries or prices that could not be decoded (logged with their offset).",
                    &self.bad_records,
                    "counter",
                ),
                ("rest_requests_total", "/api/summary requests answered.", &self.rest_requests, "counter"),
                (
                    "rest_refused_total",
                    "/api/summary requests refused (no, bad or foreign token).",
                    &self.rest_refused,
                    "counter",
                ),
                ("ready", "1 once the changelog and prices have been read to their end.", &self.ready, "gauge"),
                (
                    "feed_down",
                    "1 while upstream Kafka is unreachable (all brokers down, or no fetch answered for --feed-down-after-secs): /readyz answers 503 and subscribers are told.",
                    &self.feed_down,
                    "gauge",
                ),
                (
                    "feed_down_since_seconds",
                    "While the feed is down: when it was last known to flow (Unix seconds); 0 while up.",
                    &self.feed_down_since,
                    "gauge",
                ),
                ("feed_outages_total", "Times the upstream feed went down.", &self.feed_outages, "counter"),
            ],
        );
        self.summary_age.render(
            &mut out,
            "tradeflow_dashboard_summary_age_seconds",
            "Age of each summary change when read: now minus its Kafka timestamp (the changelog's linger plus the broker hop).",
        );
        self.fanout.render(
            &mut out,
            "tradeflow_dashboard_fanout_seconds",
            "From a row change offered to a subscriber (just after it was read and applied) to the frame carrying it written to the websocket; one observation per frame, timed from its oldest change.",
        );
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_dashboard_handshakes_refused_total",
            "Websocket handshakes refused.",
            "counter",
        );
        let _ = writeln!(
            out,
            "tradeflow_dashboard_handshakes_refused_total{{reason=\"token\"}} {}",
            self.refused_token.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "tradeflow_dashboard_handshakes_refused_total{{reason=\"origin\"}} {}",
            self.refused_origin.load(Relaxed)
        );
        out
    }
}
