//! Today's minute price bars per symbol, folded live from the ticks the dashboard reads (the
//! aggregator's rule: `tradeflow_core::bars`), for the websocket `bars` view
//! (docs/protocol.md#the-bars-view). Every change is offered on a bounded broadcast channel.
//!
//! Bounded: only today's (UTC) bars are held, so at most 1,440 per symbol, for at most
//! [`MAX_SYMBOLS`] symbols; a symbol beyond that is counted
//! (`tradeflow_dashboard_bar_symbols_over_limit_total`) and not held live — its bars are still in
//! Postgres (`/api/bars`). Ticks dated before today are in Postgres only. After a restart the
//! dashboard holds what `prices` still has (it is compacted: the newest tick per symbol), so
//! `/api/bars` is the exact record and the live bars are a view.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use compact_str::CompactString;
use tokio::sync::broadcast;
use tradeflow_core::bars::{Bar, minute_of};
use tradeflow_core::price::PriceTick;

/// Symbols whose bars are held live at most.
pub const MAX_SYMBOLS: usize = 10_000;
/// Changed bars a slow subscriber may fall behind by before it gets a fresh snapshot instead.
pub const CHANNEL: usize = 4096;

#[derive(Default)]
struct Book {
    day: Option<NaiveDate>,
    bars: HashMap<CompactString, BTreeMap<DateTime<Utc>, Bar>>,
}

pub struct LiveBars {
    book: Mutex<Book>,
    changes: broadcast::Sender<Arc<Bar>>,
    pub over_limit: AtomicU64,
}

impl Default for LiveBars {
    fn default() -> Self {
        Self { book: Mutex::default(), changes: broadcast::channel(CHANNEL).0, over_limit: AtomicU64::new(0) }
    }
}

impl LiveBars {
    /// Folds in a checked tick (in topic order) dated today at `now`'s UTC date.
    pub fn apply(&self, tick: &PriceTick, now: DateTime<Utc>) {
        let today = now.date_naive();
        if tick.at.date_naive() != today {
            return;
        }
        let changed = {
            let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
            if book.day != Some(today) {
                book.bars.clear();
                book.day = Some(today);
            }
            if !book.bars.contains_key(tick.symbol.as_str()) && book.bars.len() >= MAX_SYMBOLS {
                self.over_limit.fetch_add(1, Relaxed);
                return;
            }
            let minutes = book.bars.entry(tick.symbol.clone()).or_default();
            let bar = minutes.entry(minute_of(tick.at)).and_modify(|b| b.add(tick)).or_insert_with(|| Bar::of(tick));
            Arc::new(bar.clone())
        };
        // No receiver is not an error.
        let _ = self.changes.send(changed);
    }

    /// Today's bars of `symbol`, ascending by minute.
    pub fn today(&self, symbol: &str) -> Vec<Bar> {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        book.bars.get(symbol).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Bar>> {
        self.changes.subscribe()
    }

    /// Appends this module's metrics (Prometheus text).
    pub fn render(&self, out: &mut String) {
        tradeflow_core::metrics::samples(
            out,
            "tradeflow_dashboard_",
            &[(
                "bar_symbols_over_limit_total",
                "Ticks of symbols beyond the live bars' limit (their bars are in Postgres only).",
                &self.over_limit,
                "counter",
            )],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(symbol: &str, price: &str, at: DateTime<Utc>) -> PriceTick {
        PriceTick { symbol: symbol.into(), price: price.parse().unwrap(), at }
    }

    #[test]
    fn today_only_and_every_change_is_offered() {
        let now: DateTime<Utc> = "2026-11-30T09:31:30Z".parse().unwrap();
        let live = LiveBars::default();
        let mut rx = live.subscribe();
        live.apply(&tick("AAPL", "10", now), now);
        live.apply(&tick("AAPL", "11", now), now);
        live.apply(&tick("AAPL", "9", now - chrono::TimeDelta::days(1)), now);
        let bars = live.today("AAPL");
        assert_eq!(bars.len(), 1);
        assert_eq!((bars[0].open.to_string(), bars[0].close.to_string(), bars[0].ticks), ("10".into(), "11".into(), 2));
        assert_eq!(rx.try_recv().unwrap().ticks, 1);
        assert_eq!(rx.try_recv().unwrap().ticks, 2);
        assert!(rx.try_recv().is_err(), "yesterday's tick is not a live change");
        assert!(live.today("MSFT").is_empty());
    }
}
