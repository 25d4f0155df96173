//! The librdkafka client context of the dashboard's consumers: turns what librdkafka reports into
//! [`FeedHealth`] signals.
//!
//! - Statistics (`statistics.interval.ms` = [`STATS_INTERVAL_MS`]): a broker in state `UP` whose
//!   count of Fetch requests grew since the last report is progress. librdkafka keeps one fetch
//!   in flight per broker and sends the next only once the previous one was answered, so a grown
//!   count means fetches are being answered — with records or, on a quiet feed, empty after
//!   `fetch.wait.max.ms`.
//! - The `error` callback: `AllBrokersDown` marks the consumer down at once; an end of partition is
//!   normal (readiness is detected by it: logged at debug, as `EndOfPartitionIsNormal`); any other
//!   error is logged (at debug while the feed is down: each reconnect attempt fails then).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

use crate::feed_health::{FeedHealth, Upstream};

/// How often librdkafka reports statistics to [`FeedSignals`] (ms): the progress signal's period.
pub const STATS_INTERVAL_MS: u64 = 1000;

/// The part of librdkafka's statistics JSON read here (its STATISTICS.md: `brokers.*.state`,
/// `brokers.*.req` — requests sent, by type).
#[derive(Debug, Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: HashMap<String, BrokerStats>,
}

#[derive(Debug, Deserialize)]
struct BrokerStats {
    #[serde(default)]
    state: String,
    #[serde(default)]
    req: HashMap<String, i64>,
}

/// The client context of one of the dashboard's consumers.
pub struct FeedSignals {
    upstream: Upstream,
    health: Arc<FeedHealth>,
    /// Fetch requests sent per broker at the last statistics report.
    fetches: Mutex<HashMap<String, i64>>,
}

impl FeedSignals {
    pub fn new(upstream: Upstream, health: Arc<FeedHealth>) -> Self {
        Self { upstream, health, fetches: Mutex::default() }
    }

    /// Whether `stats` shows a fetch answered since the previous report (and remembers the counts).
    fn fetched(&self, stats: &Stats) -> bool {
        let mut seen = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        let mut progress = false;
        for (name, broker) in &stats.brokers {
            let count = broker.req.get("Fetch").copied().unwrap_or(0);
            let before = seen.insert(name.clone(), count);
            progress |= broker.state == "UP" && before.is_some_and(|b| count > b);
        }
        progress
    }
}

impl rdkafka::ClientContext for FeedSignals {
    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<Stats>(statistics) {
            Ok(stats) => {
                if self.fetched(&stats) {
                    self.health.progress(self.upstream);
                }
            }
            Err(e) => tracing::debug!(error = %e, "unreadable librdkafka statistics"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!(reason, "end of partition");
            }
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown) => {
                self.health.all_brokers_down(self.upstream);
                tracing::debug!(reason, upstream = self.upstream.name(), "all brokers down");
            }
            // Every reconnect attempt fails while the feed is down: feed_health's warning says it once.
            e if self.health.state().is_down() => tracing::debug!(error = %e, reason, "Kafka client error"),
            e => tracing::error!(error = %e, reason, "Kafka client error"),
        }
    }
}

impl rdkafka::consumer::ConsumerContext for FeedSignals {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use rdkafka::ClientContext as _;

    use super::*;
    use crate::feed_health::{DownReason, FeedState};
    use crate::metrics::Metrics;

    /// A statistics report shaped as librdkafka's (trimmed): a bootstrap entry and node 1.
    fn report(state: &str, fetches: i64) -> String {
        format!(
            r#"{{"name":"rdkafka#consumer-1","type":"consumer","ts":1,"brokers":{{
                "127.0.0.1:9092/bootstrap":{{"name":"127.0.0.1:9092/bootstrap","nodeid":-1,"state":"UP","rx":3,"req":{{"Fetch":0,"Metadata":3}}}},
                "127.0.0.1:9092/1":{{"name":"127.0.0.1:9092/1","nodeid":1,"state":"{state}","rx":40,"req":{{"Fetch":{fetches},"Metadata":1}},"toppars":{{}}}}
            }},"topics":{{}}}}"#
        )
    }

    fn stats(state: &str, fetches: i64) -> Stats {
        serde_json::from_str(&report(state, fetches)).unwrap()
    }

    #[test]
    fn grown_fetch_counts_of_an_up_broker_are_progress() {
        let health = Arc::new(FeedHealth::new(Duration::from_secs(5), Arc::default()));
        let signals = FeedSignals::new(Upstream::Summaries, health);
        assert!(!signals.fetched(&stats("UP", 10)), "the first report is the baseline");
        assert!(signals.fetched(&stats("UP", 20)), "ten fetches answered (a quiet feed's empty ones count)");
        assert!(!signals.fetched(&stats("UP", 20)), "none since");
        assert!(!signals.fetched(&stats("DOWN", 21)), "a broker that is not up");
        assert!(signals.fetched(&stats("UP", 25)), "up again and fetching");
    }

    #[tokio::test]
    async fn all_brokers_down_then_fetches_take_the_feed_down_and_up() {
        let metrics = Arc::new(Metrics::default());
        let health = Arc::new(FeedHealth::new(Duration::from_secs(60), metrics.clone()));
        health.arm(Upstream::Summaries);
        let signals = FeedSignals::new(Upstream::Summaries, health.clone());
        signals.stats_raw(report("UP", 1).as_bytes());
        signals.error(KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "2/2 brokers are down");
        let down = health.check();
        assert!(
            matches!(
                down,
                Some(FeedState::Down { reason: DownReason::AllBrokersDown, upstream: Upstream::Summaries, .. })
            ),
            "{down:?}"
        );
        signals.error(KafkaError::PartitionEOF(0), "end");
        signals.stats_raw(b"not json");
        signals.stats_raw(report("DOWN", 1).as_bytes());
        assert_eq!(health.check(), None, "no progress: still down");
        std::thread::sleep(Duration::from_millis(2));
        signals.stats_raw(report("UP", 2).as_bytes());
        assert_eq!(health.check(), Some(FeedState::Up));
        assert_eq!(metrics.feed_down.load(Relaxed), 0);
    }
}
