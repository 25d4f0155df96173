//! How the mock producer prices a trade (SPEC §1, *decided*): by default near the live mark of its
//! symbol — the same seeded random walk `tradeflow prices` publishes ([`PriceWalk`]), stepped once
//! per `interval` of activity time from the run's start, within ±[`SPREAD_BP`] basis points, two
//! decimals — so positions carry plausible P&L; or the original system's uniform 0.00–999.99.
//!
//! With the price feed's seed and interval (`TRADEFLOW_PRICES_SEED`, `TRADEFLOW_PRICES_INTERVAL_MS`
//! are read by both commands) and the feed started with the producer, the two walks are one path:
//! step n of the producer is tick n of the feed, up to the gap between their starts.

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

use crate::prices::PriceWalk;

/// Half-width of the spread around the mark, in basis points (0.05 %).
pub const SPREAD_BP: i64 = 5;

/// A generator's trade prices.
pub enum TradePrices {
    Walk {
        walk: Box<PriceWalk>,
        /// The walk's prices as of `stepped_to`, by symbol.
        marks: Vec<(String, Decimal)>,
        stepped_to: NaiveDateTime,
        interval: Duration,
    },
    Uniform,
}

impl TradePrices {
    /// The walk of `symbols` seeded with `seed`, stepped every `interval` (≥ 1 ms) from `start`.
    pub fn walk(symbols: &[&str], seed: u64, interval: Duration, start: NaiveDateTime) -> Self {
        let symbols: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
        let mut walk = PriceWalk::new(&symbols, seed);
        let marks = walk.step();
        TradePrices::Walk {
            walk: Box::new(walk),
            marks,
            stepped_to: start,
            interval: interval.max(Duration::milliseconds(1)),
        }
    }

    /// The price of a trade in `symbol` at `at` (times ascending), drawing from `rng`: one draw in
    /// either model, so the rest of a seeded stream does not depend on the model.
    pub fn price(&mut self, rng: &mut ChaCha8Rng, symbol: &str, at: NaiveDateTime) -> Decimal {
        match self {
            TradePrices::Uniform => Decimal::new(rng.random_range(0..=99_999), 2),
            TradePrices::Walk { walk, marks, stepped_to, interval } => {
                while at >= *stepped_to + *interval {
                    *marks = walk.step();
                    *stepped_to += *interval;
                }
                let bp = rng.random_range(-SPREAD_BP..=SPREAD_BP);
                let Some(mark) = marks.iter().find(|(s, _)| s == symbol).map(|(_, p)| *p) else {
                    // A symbol the walk does not know: the original uniform price.
                    return Decimal::new(rng.random_range(0..=99_999), 2);
                };
                (mark + mark * Decimal::new(bp, 4)).round_dp(2).max(Decimal::new(1, 2))
            }
        }
    }

    /// The walk's mark of `symbol` as of the last trade priced (`None` for the uniform model).
    pub fn mark(&self, symbol: &str) -> Option<Decimal> {
        match self {
            TradePrices::Walk { marks, .. } => marks.iter().find(|(s, _)| s == symbol).map(|(_, p)| *p),
            TradePrices::Uniform => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use rand::SeedableRng;

    use super::*;

    fn start() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap().and_hms_opt(9, 30, 0).unwrap()
    }

    #[test]
    fn walk_prices_are_near_the_feeds_walk_at_their_time() {
        let symbols = ["AAPL", "FB"];
        let mut prices = TradePrices::walk(&symbols, 9, Duration::milliseconds(100), start());
        let mut feed = PriceWalk::new(&symbols.map(String::from), 9);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut feed_marks = feed.step();
        for step in 0..2000i64 {
            let at = start() + Duration::milliseconds(100 * step + 50);
            let price = prices.price(&mut rng, "FB", at);
            // The feed's step `step` (its tick at start + step × 100 ms) is the trade's mark.
            assert_eq!(prices.mark("FB"), Some(feed_marks[1].1), "step {step}");
            let mark = feed_marks[1].1;
            let spread = mark * Decimal::new(SPREAD_BP, 4) + Decimal::new(1, 2);
            assert!((price - mark).abs() <= spread, "{price} vs mark {mark}");
            assert!(price.scale() <= 2 && price >= Decimal::new(1, 2));
            feed_marks = feed.step();
        }
    }

    #[test]
    fn uniform_is_the_original_range() {
        let mut prices = TradePrices::Uniform;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1000 {
            let p = prices.price(&mut rng, "AAPL", start());
            assert!(p >= Decimal::ZERO && p <= Decimal::new(99_999, 2) && p.scale() <= 2);
        }
        assert_eq!(prices.mark("AAPL"), None);
    }
}
