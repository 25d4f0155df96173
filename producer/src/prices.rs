//! `tradeflow prices`: a random-walk price per symbol, published to `prices` (key = symbol)
//! every interval.

use std::time::Duration;

use chrono::Utc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tradeflow_core::price::PriceTick;

use crate::ProducerError;
use crate::config::PricesArgs;

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

/// Publishes ticks until `--count` or `shutdown`, then flushes. Returns the ticks published.
pub async fn run(config: PricesArgs, shutdown: CancellationToken) -> Result<u64, ProducerError> {
    if config.symbols.is_empty() {
        return Err(ProducerError::Config("no symbols given".into()));
    }
    let topic = config.topics.topics().prices;
    let producer: FutureProducer = config
        .kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    let mut walk = PriceWalk::new(&config.symbols, config.seed.unwrap_or_else(rand::random));
    let mut tick = tokio::time::interval(Duration::from_millis(config.interval_ms.max(1)));
    let mut ticks = 0u64;
    tracing::info!(%topic, interval_ms = config.interval_ms, "price feed starting");
    while config.count.is_none_or(|c| ticks < c) {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let at = Utc::now();
        let sends = walk.step().into_iter().map(|(symbol, price)| {
            let payload = PriceTick { symbol: symbol.as_str().into(), price, at }.to_json();
            let producer = &producer;
            let topic = &topic;
            async move {
                let record = FutureRecord::to(topic).key(symbol.as_bytes()).payload(&payload);
                producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e)
            }
        });
        // A tick in flight is not worth holding shutdown for (the broker may be gone already).
        let results = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = futures::future::join_all(sends) => r,
        };
        for result in results {
            result?;
        }
        ticks += 1;
    }
    if let Err(e) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(error = %e, "price ticks still in flight at shutdown were dropped");
    }
    tracing::info!(ticks, "price feed stopped");
    Ok(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

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
