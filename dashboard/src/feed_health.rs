//! Whether the dashboard's upstream feed — the `summaries` and `prices` consumers — is flowing, so
//! that a board which cannot move is never shown as live (docs/protocol.md#feed-health).
//!
//! Each consumer reports **progress**: a fetch answered by an up broker (librdkafka's statistics,
//! [`crate::feed_signals`]), a record or an end of partition read, a metadata answer. A feed with
//! no trades still makes progress — its consumers' long-polling fetches are answered empty every
//! `--fetch-wait-ms` — so quiet is not down. A consumer is **down** when
//!
//! - librdkafka reported all brokers down (`RDKafkaErrorCode::AllBrokersDown`, from the client
//!   context's `error` callback) after its last progress: immediate, the usual case of a broker
//!   that died or a refused connection; or
//! - it made no progress for `--feed-down-after-secs`: the case librdkafka does not report at
//!   once (a broker that hangs, a network that drops packets, a partition without a leader).
//!
//! The feed is down while either consumer is; up again on the progress of both. Every Up ↔ Down
//! change is published on a [`tokio::sync::watch`] channel (one value: a subscriber that missed a
//! change sees only the latest), logged (warn / info) and shown by the gauges in [`Metrics`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the state is re-evaluated (the delay a change may have beyond its cause).
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// One of the two consumers the feed is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    Summaries,
    Prices,
}

impl Upstream {
    fn index(self) -> usize {
        match self {
            Upstream::Summaries => 0,
            Upstream::Prices => 1,
        }
    }

    /// The name used in logs and the down reason.
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Summaries => "summaries",
            Upstream::Prices => "prices",
        }
    }
}

/// Why the feed is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// librdkafka reported every broker down (`AllBrokersDown`).
    AllBrokersDown,
    /// No fetch answered for `--feed-down-after-secs`.
    NoProgress,
}

impl DownReason {
    /// A short code for frames and logs: `all_brokers_down` or `no_progress`.
    pub fn code(self) -> &'static str {
        match self {
            DownReason::AllBrokersDown => "all_brokers_down",
            DownReason::NoProgress => "no_progress",
        }
    }
}

/// The feed's state as subscribers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FeedState {
    #[default]
    Up,
    /// Down; `since` is when the feed was last known to flow (its last progress: the rows and
    /// marks shown are as of then), `upstream` the consumer that is down.
    Down { since: DateTime<Utc>, reason: DownReason, upstream: Upstream },
}

impl FeedState {
    pub fn is_down(&self) -> bool {
        matches!(self, FeedState::Down { .. })
    }

    /// `since` as RFC 3339 UTC with milliseconds, for frames and `/readyz`.
    pub fn since_text(&self) -> Option<String> {
        match self {
            FeedState::Up => None,
            FeedState::Down { since, .. } => Some(since.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

/// Milliseconds since [`FeedHealth`]'s start; `UNARMED` until a consumer exists.
const UNARMED: u64 = u64::MAX;

/// One consumer's signals, in milliseconds since the start (lock-free: progress is noted per record).
struct Tracker {
    last_progress: AtomicU64,
    /// When librdkafka last reported all brokers down (`UNARMED`: never).
    brokers_down: AtomicU64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self { last_progress: AtomicU64::new(UNARMED), brokers_down: AtomicU64::new(UNARMED) }
    }
}

/// The rule, on the trackers' values at `now` (all in ms since the start). Returns the down
/// consumer, why, and its last progress; `None` when every armed consumer is up.
fn judge(signals: &[(Upstream, u64, u64)], now: u64, down_after: u64) -> Option<(Upstream, DownReason, u64)> {
    signals
        .iter()
        .filter(|(_, progress, _)| *progress != UNARMED)
        .filter_map(|&(upstream, progress, brokers_down)| {
            if brokers_down != UNARMED && brokers_down >= progress {
                Some((upstream, DownReason::AllBrokersDown, progress))
            } else if now.saturating_sub(progress) >= down_after {
                Some((upstream, DownReason::NoProgress, progress))
            } else {
                None
            }
        })
        .min_by_key(|(_, _, progress)| *progress)
}

/// The feed's health: signals in, state out.
pub struct FeedHealth {
    start: Instant,
    start_wall: DateTime<Utc>,
    down_after: Duration,
    trackers: [Tracker; 2],
    state: watch::Sender<FeedState>,
    metrics: Arc<Metrics>,
}

impl FeedHealth {
    /// A feed judged down after `down_after` without progress; up until a consumer is armed.
    pub fn new(down_after: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            start: Instant::now(),
            start_wall: Utc::now(),
            down_after,
            trackers: [Tracker::default(), Tracker::default()],
            state: watch::Sender::new(FeedState::Up),
            metrics,
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn tracker(&self, upstream: Upstream) -> &Tracker {
        &self.trackers[upstream.index()]
    }

    /// The consumer of `upstream` exists: from now on it must make progress.
    pub fn arm(&self, upstream: Upstream) {
        let _ = self.tracker(upstream).last_progress.compare_exchange(UNARMED, self.now_ms(), Relaxed, Relaxed);
    }

    /// The consumer of `upstream` made progress (a fetch answered, a record, a metadata answer).
    pub fn progress(&self, upstream: Upstream) {
        self.tracker(upstream).last_progress.store(self.now_ms(), Relaxed);
    }

    /// librdkafka reported every broker of `upstream`'s consumer down.
    pub fn all_brokers_down(&self, upstream: Upstream) {
        self.tracker(upstream).brokers_down.store(self.now_ms(), Relaxed);
    }

    /// The current state.
    pub fn state(&self) -> FeedState {
        *self.state.borrow()
    }

    /// A receiver of every change (a session's: it sees the latest state, coalesced).
    pub fn subscribe(&self) -> watch::Receiver<FeedState> {
        self.state.subscribe()
    }

    /// Re-evaluates the rule now; on an Up ↔ Down change publishes the new state, logs it and sets
    /// the gauges. Returns the new state when it changed.
    pub fn check(&self) -> Option<FeedState> {
        let now = self.now_ms();
        let signals = [Upstream::Summaries, Upstream::Prices].map(|u| {
            let t = self.tracker(u);
            (u, t.last_progress.load(Relaxed), t.brokers_down.load(Relaxed))
        });
        let judged = judge(&signals, now, self.down_after.as_millis() as u64);
        let current = self.state();
        let next = match (judged, current) {
            (None, FeedState::Up) | (Some(_), FeedState::Down { .. }) => return None,
            (None, FeedState::Down { .. }) => FeedState::Up,
            (Some((upstream, reason, progress)), FeedState::Up) => FeedState::Down {
                since: self.start_wall + chrono::Duration::milliseconds(progress as i64),
                reason,
                upstream,
            },
        };
        match next {
            FeedState::Down { since, reason, upstream } => {
                self.metrics.feed_down.store(1, Relaxed);
                self.metrics.feed_down_since.store(since.timestamp().max(0) as u64, Relaxed);
                self.metrics.feed_outages.fetch_add(1, Relaxed);
                tracing::warn!(since = %next.since_text().unwrap_or_default(), reason = reason.code(), upstream = upstream.name(), "upstream Kafka unreachable: the feed is down, subscribers are told");
            }
            FeedState::Up => {
                self.metrics.feed_down.store(0, Relaxed);
                self.metrics.feed_down_since.store(0, Relaxed);
                tracing::info!(was_down_since = %current.since_text().unwrap_or_default(), "upstream Kafka reachable again: the feed is up");
            }
        }
        self.state.send_replace(next);
        Some(next)
    }
}

/// Re-evaluates `health` every [`CHECK_EVERY`] until `shutdown`.
pub async fn watch(health: Arc<FeedHealth>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                health.check();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Upstream = Upstream::Summaries;
    const P: Upstream = Upstream::Prices;

    #[test]
    fn unarmed_consumers_are_not_judged() {
        assert_eq!(judge(&[(S, UNARMED, UNARMED), (P, UNARMED, 5)], 1_000_000, 5000), None);
    }

    #[test]
    fn a_quiet_feed_whose_fetches_are_answered_is_up() {
        // Progress 1 s ago on both (fetches answered empty): up however long since the last record.
        assert_eq!(judge(&[(S, 99_000, UNARMED), (P, 99_500, UNARMED)], 100_000, 5000), None);
    }

    #[test]
    fn no_progress_for_the_bound_is_down_since_the_last_progress() {
        assert_eq!(
            judge(&[(S, 94_999, UNARMED), (P, 99_000, UNARMED)], 100_000, 5000),
            Some((S, DownReason::NoProgress, 94_999))
        );
        assert_eq!(judge(&[(S, 95_001, UNARMED), (P, 99_000, UNARMED)], 100_000, 5000), None);
    }

    #[test]
    fn all_brokers_down_is_down_at_once_until_progress_after_it() {
        assert_eq!(
            judge(&[(S, 99_000, UNARMED), (P, 99_000, 99_900)], 100_000, 5000),
            Some((P, DownReason::AllBrokersDown, 99_000))
        );
        // In the same millisecond as the last progress: still down.
        assert_eq!(
            judge(&[(S, 99_000, UNARMED), (P, 99_900, 99_900)], 100_000, 5000),
            Some((P, DownReason::AllBrokersDown, 99_900))
        );
        // Progress after the report: up again.
        assert_eq!(judge(&[(S, 99_000, UNARMED), (P, 99_950, 99_900)], 100_000, 5000), None);
    }

    #[test]
    fn of_two_down_consumers_the_longer_down_is_named() {
        let judged = judge(&[(S, 90_000, UNARMED), (P, 80_000, 85_000)], 100_000, 5000);
        assert_eq!(judged, Some((P, DownReason::AllBrokersDown, 80_000)));
    }

    #[tokio::test]
    async fn changes_are_published_once_each_way_with_gauges_and_since() {
        let metrics = Arc::new(Metrics::default());
        let health = FeedHealth::new(Duration::from_secs(60), metrics.clone());
        let mut rx = health.subscribe();
        assert_eq!(health.check(), None, "nothing armed: up");
        health.arm(Upstream::Summaries);
        health.arm(Upstream::Prices);
        assert_eq!(health.check(), None, "armed, just now");
        health.all_brokers_down(Upstream::Prices);
        let down = health.check().expect("down at once");
        let FeedState::Down { since, reason, upstream } = down else { panic!("{down:?}") };
        assert_eq!((reason, upstream), (DownReason::AllBrokersDown, Upstream::Prices));
        assert!(since >= health.start_wall && since <= Utc::now());
        assert_eq!((metrics.feed_down.load(Relaxed), metrics.feed_outages.load(Relaxed)), (1, 1));
        assert_eq!(metrics.feed_down_since.load(Relaxed), since.timestamp() as u64);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), down);
        assert_eq!(health.check(), None, "still down: no second change");
        assert!(!rx.has_changed().unwrap());
        // Progress strictly after the report (a later millisecond).
        std::thread::sleep(Duration::from_millis(2));
        health.progress(Upstream::Prices);
        assert_eq!(health.check(), Some(FeedState::Up));
        assert_eq!((metrics.feed_down.load(Relaxed), metrics.feed_down_since.load(Relaxed)), (0, 0));
        assert_eq!(*rx.borrow_and_update(), FeedState::Up);
        assert_eq!(health.check(), None);
    }

    #[test]
    fn since_is_rfc3339_utc_with_milliseconds() {
        let since = DateTime::parse_from_rfc3339("2026-12-01T12:03:04.5Z").unwrap().with_timezone(&Utc);
        let state = FeedState::Down { since, reason: DownReason::NoProgress, upstream: Upstream::Summaries };
        assert_eq!(state.since_text().as_deref(), Some("2026-12-01T12:03:04.500Z"));
        assert_eq!(FeedState::Up.since_text(), None);
    }
}
