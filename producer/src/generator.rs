//! The mock trade stream of one client (SPEC §1): accounts CQ01–CQ03, five symbols, B/S, price
//! near the price feed's walk or uniform 0.00–999.99 ([`TradePrices`]), quantity uniform 0–99, 10–20 trades per second (or a fixed rate), activity
//! times ascending. Seeded with ChaCha8, whose output is stable across rand versions, so one seed
//! gives byte-identical files.

use chrono::{Duration, NaiveDateTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tradeflow_core::{ClientId, Side, Trade};

use crate::trade_prices::TradePrices;

pub const ACCOUNTS: [&str; 3] = ["CQ01", "CQ02", "CQ03"];
pub const SYMBOLS: [&str; 5] = ["BANKNIFTY", "AAPL", "AMZN", "FB", "GOOG"];

/// Trades per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// Uniform in 10–20 each second (the original feed).
    Mock,
    Fixed(u32),
}

/// An endless, ascending stream of one client's trades starting at `start`.
pub struct TradeGenerator {
    rng: ChaCha8Rng,
    rate: Rate,
    second_start: NaiveDateTime,
    /// Offsets (ns) of the current second still to emit, in descending order (pop from the back).
    pending: Vec<i64>,
    started: bool,
    prices: TradePrices,
}

/// The price feed's default interval: the walk steps this often (in activity time).
pub const WALK_INTERVAL_MS: i64 = 100;

impl TradeGenerator {
    /// Prices near the walk seeded with `seed` itself, stepped every [`WALK_INTERVAL_MS`] from
    /// `start` (the defaults of `tradeflow producer`); [`Self::with_prices`] sets another.
    pub fn new(client: &ClientId, seed: u64, rate: Rate, start: NaiveDateTime) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(client_seed(seed, client)),
            rate,
            second_start: start,
            pending: Vec::new(),
            started: false,
            prices: TradePrices::walk(&SYMBOLS, seed, Duration::milliseconds(WALK_INTERVAL_MS), start),
        }
    }

    pub fn with_prices(self, prices: TradePrices) -> Self {
        Self { prices, ..self }
    }

    /// The activity time of the next trade.
    pub fn peek_time(&mut self) -> NaiveDateTime {
        self.fill();
        self.second_start + Duration::nanoseconds(self.pending.last().copied().unwrap_or_default())
    }

    fn fill(&mut self) {
        while self.pending.is_empty() {
            if self.started {
                self.second_start += Duration::seconds(1);
            }
            let n = match self.rate {
                Rate::Mock => self.rng.random_range(10..=20),
                Rate::Fixed(n) => n,
            };
            self.pending = (0..n).map(|_| self.rng.random_range(0..1_000_000_000i64)).collect();
            self.pending.sort_unstable_by(|a, b| b.cmp(a));
            self.started = true;
        }
    }

    pub fn next_trade(&mut self) -> Trade {
        let activity_time = self.peek_time();
        self.pending.pop();
        let rng = &mut self.rng;
        let symbol = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
        let side = if rng.random_bool(0.5) { Side::Buy } else { Side::Sell };
        let price = self.prices.price(rng, symbol, activity_time);
        let quantity = rng.random_range(0..=99);
        let account = ACCOUNTS[rng.random_range(0..ACCOUNTS.len())];
        Trade::from_template(activity_time, symbol, side, price, quantity, account)
    }
}

/// A per-client seed: FNV-1a of the client id mixed into the run's seed.
fn client_seed(seed: u64, client: &ClientId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client.as_str().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ h
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    fn start() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap().and_hms_opt(9, 30, 0).unwrap()
    }

    #[test]
    fn ascending_within_distribution_and_reproducible() {
        let c = ClientId::parse("7").unwrap();
        let mut a = TradeGenerator::new(&c, 42, Rate::Mock, start()).with_prices(TradePrices::Uniform);
        let mut b = TradeGenerator::new(&c, 42, Rate::Mock, start()).with_prices(TradePrices::Uniform);
        let trades: Vec<Trade> = (0..2000).map(|_| a.next_trade()).collect();
        let again: Vec<Trade> = (0..2000).map(|_| b.next_trade()).collect();
        assert_eq!(trades, again);
        assert!(trades.windows(2).all(|w| w[0].activity_time <= w[1].activity_time));
        for t in &trades {
            assert!(t.price >= Decimal::ZERO && t.price <= Decimal::new(99_999, 2));
            assert!((0..=99).contains(&t.quantity));
            assert!(ACCOUNTS.contains(&t.account_id.as_str()) && SYMBOLS.contains(&t.symbol.as_str()));
        }
        // 10–20 per second: 2000 trades span 100–200 seconds.
        let span = trades[1999].activity_time - trades[0].activity_time;
        assert!((99..=201).contains(&span.num_seconds()), "{span}");
        let other = TradeGenerator::new(&ClientId::parse("8").unwrap(), 42, Rate::Mock, start()).next_trade();
        assert_ne!(other, trades[0]);
    }

    #[test]
    fn by_default_prices_follow_the_walk() {
        let c = ClientId::parse("7").unwrap();
        let mut g = TradeGenerator::new(&c, 42, Rate::Mock, start());
        let mut walk = TradeGenerator::new(&c, 42, Rate::Mock, start());
        for _ in 0..5000 {
            let t = g.next_trade();
            walk.next_trade();
            let mark = walk.prices.mark(&t.symbol).unwrap();
            let spread = mark * Decimal::new(crate::trade_prices::SPREAD_BP, 4) + Decimal::new(1, 2);
            assert!((t.price - mark).abs() <= spread, "{} vs mark {mark}", t.price);
        }
    }

    #[test]
    fn fixed_rate() {
        let mut g = TradeGenerator::new(&ClientId::parse("1").unwrap(), 1, Rate::Fixed(1000), start());
        let first = g.peek_time();
        for _ in 0..1000 {
            g.next_trade();
        }
        assert!(g.peek_time() >= start() + Duration::seconds(1));
        assert!(first >= start() && first < start() + Duration::seconds(1));
    }
}
