//! Minute price bars (OHLC and tick count per symbol and UTC minute) folded from `prices` ticks —
//! one rule for the aggregator's bar writer (persisted in `price_bars`) and the dashboard's live
//! bars (docs/protocol.md#bars, docs/sql.md#price-bars).
//!
//! Ordering rule: ticks are folded in their order on `prices` (one symbol is one key, so one
//! partition, so offsets order them). A bar's **open** is the tick with the earliest `at` in the
//! minute, ties going to the earlier offset; its **close** the tick with the latest `at`, ties going
//! to the later offset; **high**/**low** the extreme prices; **ticks** the count. So a late-arriving
//! tick dated earlier in the minute becomes the open, and the bar does not depend on when ticks are
//! read, only on what they say and their order on the topic.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound as _, NaiveDate, TimeDelta, Utc};
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::price::PriceTick;

/// One (symbol, minute) bar. Serialised as the REST answer and the websocket frame show it:
/// `{"minute":"…Z","open":"…","high":"…","low":"…","close":"…","ticks":N}` (prices are exact
/// decimals as strings; the symbol is beside the list, `open_at`/`close_at` are kept for merging).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bar {
    #[serde(skip)]
    pub symbol: CompactString,
    /// Start of the UTC minute.
    pub minute: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub ticks: i64,
    /// `at` of the open tick.
    #[serde(skip)]
    pub open_at: DateTime<Utc>,
    /// `at` of the close tick.
    #[serde(skip)]
    pub close_at: DateTime<Utc>,
}

/// The start of the UTC minute holding `at`.
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    // Truncation to a minute only fails for timestamps outside chrono's span; `at` is inside it.
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

impl Bar {
    /// The bar of one tick.
    pub fn of(tick: &PriceTick) -> Self {
        Self {
            symbol: tick.symbol.clone(),
            minute: minute_of(tick.at),
            open: tick.price,
            high: tick.price,
            low: tick.price,
            close: tick.price,
            ticks: 1,
            open_at: tick.at,
            close_at: tick.at,
        }
    }

    /// The bar's trade date: the UTC date of its minute.
    pub fn trade_date(&self) -> NaiveDate {
        self.minute.date_naive()
    }

    /// Folds in a tick of the same symbol and minute that comes *after* every tick already in the
    /// bar on the topic (see the module's ordering rule).
    pub fn add(&mut self, tick: &PriceTick) {
        self.merge(&Bar::of(tick));
    }

    /// Folds in `later`, a bar of the same (symbol, minute) made of ticks that all come after this
    /// bar's on the topic. Associative, so bars can be folded in batches and merged (as the bar
    /// writer does with the stored bar).
    pub fn merge(&mut self, later: &Bar) {
        if later.open_at < self.open_at {
            self.open = later.open;
            self.open_at = later.open_at;
        }
        if later.close_at >= self.close_at {
            self.close = later.close;
            self.close_at = later.close_at;
        }
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.ticks += later.ticks;
    }
}

/// The bars of a tick sequence in topic order, by (symbol, minute).
pub fn fold<'a>(ticks: impl IntoIterator<Item = &'a PriceTick>) -> BTreeMap<(CompactString, DateTime<Utc>), Bar> {
    let mut bars: BTreeMap<(CompactString, DateTime<Utc>), Bar> = BTreeMap::new();
    for tick in ticks {
        let key = (tick.symbol.clone(), minute_of(tick.at));
        match bars.get_mut(&key) {
            Some(bar) => bar.add(tick),
            None => {
                bars.insert(key, Bar::of(tick));
            }
        }
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(price: &str, at: &str) -> PriceTick {
        PriceTick { symbol: "AAPL".into(), price: price.parse().unwrap(), at: at.parse().unwrap() }
    }

    #[test]
    fn open_is_the_earliest_tick_and_close_the_latest_ties_by_order() {
        let ticks = [
            tick("101.50", "2026-11-30T09:31:20Z"),
            tick("101.25", "2026-11-30T09:31:05Z"), // late, dated earlier: the open
            tick("101.90", "2026-11-30T09:31:40Z"),
            tick("101.10", "2026-11-30T09:31:59.999Z"),
            tick("101.60", "2026-11-30T09:31:59.999Z"), // same time, later on the topic: the close
            tick("99", "2026-11-30T09:32:00Z"),         // next minute
        ];
        let bars = fold(&ticks);
        assert_eq!(bars.len(), 2);
        let b = bars.values().next().unwrap();
        assert_eq!(b.minute, "2026-11-30T09:31:00Z".parse::<DateTime<Utc>>().unwrap());
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!((b.open, b.high, b.low, b.close, b.ticks), (d("101.25"), d("101.90"), d("101.10"), d("101.60"), 5));
        assert_eq!(b.trade_date().to_string(), "2026-11-30");
        let json = serde_json::to_string(b).unwrap();
        assert_eq!(
            json,
            r#"{"minute":"2026-11-30T09:31:00Z","open":"101.25","high":"101.90","low":"101.10","close":"101.60","ticks":5}"#
        );
    }

    #[test]
    fn folding_in_batches_and_merging_equals_folding_at_once() {
        let ticks: Vec<PriceTick> = (0..40)
            .map(|i| {
                tick(&format!("{}.{}", 100 + (i * 7) % 13, i % 10), &format!("2026-11-30T09:31:{:02}Z", (i * 17) % 60))
            })
            .collect();
        let whole = fold(&ticks);
        for cut in [1, 7, 20, 39] {
            let mut first = fold(&ticks[..cut]);
            for (k, later) in fold(&ticks[cut..]) {
                match first.get_mut(&k) {
                    Some(b) => b.merge(&later),
                    None => {
                        first.insert(k, later);
                    }
                }
            }
            assert_eq!(first, whole, "cut at {cut}");
        }
    }
}
