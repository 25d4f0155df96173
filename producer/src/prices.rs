//! `tradeflow prices`: a random-walk price per symbol, published to `prices` (key = symbol)
//! every interval.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::channel::oneshot::Canceled;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::error::KafkaError;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tradeflow_core::price::PriceTick;

use crate::ProducerError;
use crate::config::PricesArgs;
use crate::tick_deliveries::{Change, Deliveries};

/// A symbol's walk: each step moves the price by up to ±0.2 %, in cents, never below 0.01.
pub struct PriceWalk {
    rng: ChaCha8Rng,
    prices: Vec<(String, Decimal)>,
}

impl PriceWalk {
    pub fn new(symbols: &[String], seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let prices = symbols.iter().map(|s| (s.clone(), Decimal::new(rng.random_range(10_000..=99_999), 2))).collect();
        Self { rng, prices }
    }

    pub fn step(&mut self) -> Vec<(String, Decimal)> {
        for (_, price) in &mut self.prices {
            let bp = Decimal::new(self.rng.random_range(-20..=20), 4);
            let moved = (*price + *price * bp).round_dp(2);
            *price = moved.max(Decimal::new(1, 2));
        }
        self.prices.clone()
    }
}

/// How long librdkafka may try to deliver a tick (`message.timeout.ms`): a tick not delivered by
/// then is stale, dropped and counted (the feed's next tick carries a fresh price).
pub const TICK_TIMEOUT: Duration = Duration::from_secs(5);

/// A healthy feed delivers a tick at least every `interval_ms` plus [`TICK_TIMEOUT`]: a stall
/// bound below that would call a slow feed stalled and restart it forever. `Config` error if so.
fn check_stall_bound(max_stall_secs: u64, interval_ms: u64) -> Result<(), ProducerError> {
    let least_ms = interval_ms.saturating_add(u64::try_from(TICK_TIMEOUT.as_millis()).unwrap_or(u64::MAX));
    if max_stall_secs.saturating_mul(1000) <= least_ms {
        return Err(ProducerError::Config(format!(
            "--max-stall-secs {max_stall_secs} must exceed --interval-ms {interval_ms} plus the {} s a tick may take to be delivered (at least {} s)",
            TICK_TIMEOUT.as_secs(),
            least_ms / 1000 + 1
        )));
    }
    Ok(())
}

/// Publishes ticks until `--count` or `shutdown`, then flushes. Returns the ticks generated.
///
/// The loop never waits for the broker: each tick is queued and its delivery report counted as it
/// arrives, so a broker that hangs or restarts costs the ticks of the outage (dropped, counted,
/// logged when dropping starts and when deliveries resume), not the feed. It stops with an error —
/// for its supervisor to restart it — when the producer reports a fatal error, or when no tick has
/// been delivered for `--max-stall-secs` (the broker away that long, or a client wedged).
pub async fn run(config: PricesArgs, shutdown: CancellationToken) -> Result<u64, ProducerError> {
    if config.symbols.is_empty() {
        return Err(ProducerError::Config("no symbols given".into()));
    }
    check_stall_bound(config.max_stall_secs, config.interval_ms)?;
    let topic = config.topics.topics().prices;
    let producer: FutureProducer = config
        .kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", TICK_TIMEOUT.as_millis().to_string())
        .create()?;
    let mut walk = PriceWalk::new(&config.symbols, config.seed.unwrap_or_else(rand::random));
    let mut tick = tokio::time::interval(Duration::from_millis(config.interval_ms.max(1)));
    // A tick missed is not made up for with a burst of catch-up ticks: a live feed moves on.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let max_stall = Duration::from_secs(config.max_stall_secs);
    let mut deliveries = Deliveries::new(Instant::now(), max_stall);
    let mut pending: FuturesUnordered<BoxFuture<'static, Result<(), KafkaError>>> = FuturesUnordered::new();
    let mut ticks = 0u64;
    tracing::info!(%topic, interval_ms = config.interval_ms, max_stall_secs = config.max_stall_secs, "price feed starting");
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            Some(result) = pending.next(), if !pending.is_empty() => {
                log_change(deliveries.record(&result, Instant::now()), &result, &deliveries);
            }
            _ = tick.tick() => {
                if config.count.is_some_and(|c| ticks >= c) {
                    break Ok(());
                }
                if let Some((code, reason)) = producer.client().fatal_error() {
                    break Err(ProducerError::Fatal { code, reason });
                }
                if let Some(since) = deliveries.stalled(Instant::now()) {
                    break Err(ProducerError::Stalled { secs: since.as_secs(), dropped: deliveries.dropped() });
                }
                let at = Utc::now();
                for (symbol, price) in walk.step() {
                    let payload = PriceTick { symbol: symbol.as_str().into(), price, at }.to_json();
                    let record = FutureRecord::to(&topic).key(symbol.as_bytes()).payload(&payload);
                    match producer.send_result(record) {
                        Ok(delivery) => pending.push(Box::pin(delivery.map(delivery_outcome))),
                        Err((e, _)) => {
                            let result = Err(e);
                            log_change(deliveries.record(&result, Instant::now()), &result, &deliveries);
                        }
                    }
                }
                ticks += 1;
            }
        }
    };
    if let Err(e) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(error = %e, in_flight = pending.len(), "price ticks still in flight at shutdown are dropped");
    }
    // Flushed: the reports are in (or the ticks are given up after a short wait).
    let drain = async {
        while let Some(result) = pending.next().await {
            deliveries.record(&result, Instant::now());
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    deliveries.drop_ticks(pending.len() as u64);
    tracing::info!(ticks, delivered = deliveries.delivered(), dropped = deliveries.dropped(), "price feed stopped");
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "price feed cannot go on: exiting for its supervisor to restart it");
    }
    outcome.map(|()| ticks)
}

/// A delivery report as this feed counts it (a report lost with the producer is a failure).
fn delivery_outcome(report: Result<OwnedDeliveryResult, Canceled>) -> Result<(), KafkaError> {
    match report {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(Canceled) => Err(KafkaError::Canceled),
    }
}

/// Logs the start and the end of an outage (not every dropped tick).
fn log_change(change: Change, result: &Result<(), KafkaError>, deliveries: &Deliveries) {
    match (change, result) {
        (Change::StartedDropping, Err(e)) => tracing::warn!(
            error = %e,
            dropped_total = deliveries.dropped(),
            "price ticks are not being delivered: dropping them until the broker answers"
        ),
        (Change::Recovered { dropped }, _) => {
            tracing::info!(dropped, dropped_total = deliveries.dropped(), "price ticks delivered again")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_bound_below_the_tick_interval_plus_its_timeout_is_refused() {
        assert!(check_stall_bound(60, 100).is_ok());
        assert!(check_stall_bound(6, 100).is_ok());
        assert!(check_stall_bound(5, 100).is_err(), "no more than the 5 s tick timeout");
        let e = check_stall_bound(60, 120_000).unwrap_err().to_string();
        assert!(e.contains("at least 126 s"), "{e}");
        assert!(check_stall_bound(126, 120_000).is_ok());
    }

    #[test]
    fn walk_is_reproducible_positive_and_in_cents() {
        let symbols: Vec<String> = ["AAPL", "FB"].iter().map(|s| s.to_string()).collect();
        let mut a = PriceWalk::new(&symbols, 3);
        let mut b = PriceWalk::new(&symbols, 3);
        for _ in 0..10_000 {
            let x = a.step();
            assert_eq!(x, b.step());
            assert!(x.iter().all(|(_, p)| *p >= Decimal::new(1, 2) && p.scale() <= 2));
        }
    }
}
