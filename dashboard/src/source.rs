//! Reads `summaries` and `prices` — every partition, from the beginning (both are compacted) —
//! into [`Live`]. No consumer group: each dashboard instance reads everything, so several run side
//! by side. Ready once both topics have been read to the end they had at start. A price tick
//! moves a mark only if `PriceTick::check` passes at this host's clock (the aggregator's rule).
//! Each consumer reports its progress and librdkafka's errors to [`FeedHealth`] (through
//! [`FeedSignals`], its client context).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tradeflow_core::changelog::SummaryChange;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::price::{PriceTick, TickError};

use crate::feed_health::{FeedHealth, Upstream};
use crate::feed_signals::{FeedSignals, STATS_INTERVAL_MS};
use crate::live::Live;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Summaries,
    Prices,
}

impl Kind {
    fn upstream(self) -> Upstream {
        match self {
            Kind::Summaries => Upstream::Summaries,
            Kind::Prices => Upstream::Prices,
        }
    }
}

/// End-of-partition is how readiness is detected (below), not an error; statistics and errors
/// are the feed's health signals.
type SourceConsumer = StreamConsumer<FeedSignals>;

/// Creates a consumer assigned to every partition of `topic` from the beginning, waiting (until
/// `shutdown`) for the topic to exist. Returns the partition count. From its creation the
/// consumer must make progress (`health`): a metadata answer counts.
async fn assign_all(
    kafka: &KafkaArgs,
    topic: &str,
    kind: Kind,
    health: &Arc<FeedHealth>,
    shutdown: &CancellationToken,
) -> Result<Option<(SourceConsumer, usize)>, KafkaError> {
    let consumer: SourceConsumer = kafka
        .consumer_config()
        .set("group.id", "tradeflow-dashboard-unused")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.error.backoff.ms", "50")
        .set("statistics.interval.ms", STATS_INTERVAL_MS.to_string())
        .create_with_context(FeedSignals::new(kind.upstream(), health.clone()))?;
    health.arm(kind.upstream());
    let mut warned = false;
    loop {
        // A blocking broker round trip: keep it off the async workers' queue.
        let metadata = tokio::task::block_in_place(|| consumer.fetch_metadata(Some(topic), Duration::from_secs(5)));
        let partitions = match metadata {
            Ok(md) => {
                health.progress(kind.upstream());
                md.topics().first().map(|t| t.partitions().len()).unwrap_or(0)
            }
            Err(e) => {
                tracing::debug!(error = %e, topic, "metadata");
                0
            }
        };
        if partitions > 0 {
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
            }
            consumer.assign(&tpl)?;
            return Ok(Some((consumer, partitions)));
        }
        if !warned {
            tracing::warn!(topic, "waiting for the topic to exist");
            warned = true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The topics the dashboard follows.
pub struct SourceTopics {
    pub summaries: String,
    pub prices: String,
}

/// Follows both topics until `shutdown`, reporting the consumers' health to `health`.
pub async fn follow(
    kafka: KafkaArgs,
    topics: SourceTopics,
    live: Arc<Live>,
    health: Arc<FeedHealth>,
    shutdown: CancellationToken,
) -> Result<(), KafkaError> {
    let SourceTopics { summaries, prices } = topics;
    let Some((s, s_parts)) = assign_all(&kafka, &summaries, Kind::Summaries, &health, &shutdown).await? else {
        return Ok(());
    };
    // Summaries are consumed (and their consumer makes progress) while the prices topic may still
    // be awaited; readiness waits for both topics' partitions (unknown count: never ready yet).
    let caught_up = Arc::new(std::sync::Mutex::new(CatchUp { reached: HashSet::new(), partitions: usize::MAX }));
    let a =
        tokio::spawn(consume(s, Kind::Summaries, live.clone(), health.clone(), caught_up.clone(), shutdown.clone()));
    let Some((p, p_parts)) = assign_all(&kafka, &prices, Kind::Prices, &health, &shutdown).await? else {
        let _ = a.await;
        return Ok(());
    };
    caught_up.lock().unwrap_or_else(|e| e.into_inner()).partitions = s_parts + p_parts;
    let b = tokio::spawn(consume(p, Kind::Prices, live, health, caught_up, shutdown));
    let _ = tokio::join!(a, b);
    Ok(())
}

/// Which (is summaries, partition) pairs have reached their end once, out of how many: ready when all have.
struct CatchUp {
    reached: HashSet<(bool, i32)>,
    partitions: usize,
}

async fn consume(
    consumer: SourceConsumer,
    kind: Kind,
    live: Arc<Live>,
    health: Arc<FeedHealth>,
    caught_up: Arc<std::sync::Mutex<CatchUp>>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => m,
        };
        match message {
            Ok(m) => {
                health.progress(kind.upstream());
                let Some(payload) = m.payload() else { continue };
                if let (Kind::Summaries, Some(ts)) = (kind, m.timestamp().to_millis()) {
                    live.metrics.summary_age.observe_age_ms(ts);
                }
                match kind {
                    Kind::Summaries => match SummaryChange::from_json(payload) {
                        Ok(change) => {
                            live.apply_change(change);
                        }
                        Err(e) => {
                            live.metrics.bad_records.fetch_add(1, Relaxed);
                            tracing::warn!(error = %e, topic = m.topic(), partition = m.partition(), offset = m.offset(), "undecodable summary change skipped");
                        }
                    },
                    Kind::Prices => match PriceTick::from_json(payload) {
                        // Time from outside is checked (one rule with the aggregator's marks).
                        Ok(tick) => match tick.check(chrono::Utc::now()) {
                            Ok(()) => live.apply_tick(tick),
                            Err(why) => {
                                live.metrics.price_ticks_refused.fetch_add(1, Relaxed);
                                tracing::warn!(symbol = %tick.symbol, price = %tick.price, at = %tick.at, partition = m.partition(), offset = m.offset(), reason = %why, "price tick refused");
                            }
                        },
                        Err(TickError::Refused(why)) => {
                            // A price the log's Price rule refuses (`"1e3"`): a refused tick.
                            live.metrics.price_ticks_refused.fetch_add(1, Relaxed);
                            tracing::warn!(partition = m.partition(), offset = m.offset(), code = why.code(), reason = %why, "price tick refused");
                        }
                        Err(e) => {
                            live.metrics.bad_records.fetch_add(1, Relaxed);
                            tracing::warn!(error = %e, topic = m.topic(), partition = m.partition(), offset = m.offset(), "undecodable price tick skipped");
                        }
                    },
                }
            }
            Err(KafkaError::PartitionEOF(p)) => {
                health.progress(kind.upstream());
                let mut c = caught_up.lock().unwrap_or_else(|e| e.into_inner());
                if c.reached.insert((kind == Kind::Summaries, p))
                    && c.reached.len() == c.partitions
                    && live.metrics.ready.swap(1, Relaxed) == 0
                {
                    tracing::info!("caught up with summaries and prices: ready");
                }
            }
            Err(e) => {
                if health.state().is_down() {
                    tracing::debug!(error = %e, ?kind, "consumer error while the feed is down");
                } else {
                    tracing::warn!(error = %e, ?kind, "consumer error");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}
