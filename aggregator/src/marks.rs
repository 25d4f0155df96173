//! The latest mark of every symbol, read from `prices` (all partitions, from the beginning: the
//! topic is compacted) by every instance. A tick moves a mark only if [`PriceTick::check`] passes
//! at this host's clock (dated at most 5 s ahead, a price in 0..=10^9) and its price is written
//! as a log line's `Price` may be ([`PriceTick::from_json`]: `"1e3"` is refused): a refused tick is logged
//! with its partition and offset and counted in `tradeflow_aggregator_price_ticks_refused_total`,
//! so one tick from the future cannot freeze a mark.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rdkafka::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;
use tradeflow_core::kafka::{KafkaArgs, close_off_runtime};
use tradeflow_core::price::PriceTick;
use tradeflow_core::summary::Mark;

use crate::metrics::Metrics;

pub type Marks = Arc<RwLock<HashMap<String, Mark>>>;

pub fn snapshot(marks: &Marks) -> HashMap<String, Mark> {
    marks.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Follows `topic` until `shutdown`, keeping the newest tick per symbol. The task ends once its
/// consumer is closed (off the async workers: [`close_off_runtime`]).
pub fn follow(
    kafka: &KafkaArgs,
    topic: &str,
    group: &str,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(Marks, tokio::task::JoinHandle<()>), rdkafka::error::KafkaError> {
    let consumer: StreamConsumer = kafka
        .consumer_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let marks: Marks = Arc::default();
    let out = marks.clone();
    let task = tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = consumer.recv() => m,
            };
            match m {
                Ok(m) => match m.payload().map(PriceTick::from_json) {
                    Some(Ok(tick)) => {
                        if let Err(why) = tick.check(chrono::Utc::now()) {
                            metrics.count_tick_refused(why.code());
                            tracing::warn!(symbol = %tick.symbol, price = %tick.price, at = %tick.at, partition = m.partition(), offset = m.offset(), reason = %why, "price tick refused");
                            continue;
                        }
                        metrics.price_ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let mut map = marks.write().unwrap_or_else(|e| e.into_inner());
                        let newer = map.get(tick.symbol.as_str()).is_none_or(|old| old.at <= tick.at);
                        if newer {
                            map.insert(tick.symbol.to_string(), Mark { price: tick.price, at: tick.at });
                        }
                    }
                    Some(Err(e)) => {
                        // Not a tick (`undecodable`), or a price the log's Price rule refuses (`bad_price`, …).
                        metrics.count_tick_refused(e.code());
                        tracing::warn!(error = %e, code = e.code(), partition = m.partition(), offset = m.offset(), "price tick refused");
                    }
                    None => {}
                },
                Err(e) => tracing::warn!(error = %e, "prices consumer error"),
            }
        }
        close_off_runtime(consumer, "marks consumer").await;
    });
    Ok((out, task))
}
