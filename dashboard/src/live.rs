//! The live rows: every client's current summary rows (from `summaries`) joined with the latest
//! mark (from `prices`), and each client's **feed** — one sequence of deltas shared by everyone
//! watching that client.
//!
//! Each change to a client's rows gets the next sequence number of its feed, is kept in the feed's
//! bounded history (for resuming subscribers) and is offered to every subscriber of the client.
//! Registering a subscriber and taking its snapshot happen under the feed's lock, so no delta can
//! fall between the snapshot and the first delta.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::Utc;
use compact_str::CompactString;
use tradeflow_core::ClientId;
use tradeflow_core::changelog::SummaryChange;
use tradeflow_core::price::PriceTick;
use tradeflow_core::summary::{Mark, SummaryRow};

use crate::delta::{Delta, Offer};
use crate::metrics::Metrics;
use crate::row::{Filter, RowKey, row_key};
use crate::subscriber::Subscriber;

struct LiveRow {
    row: Arc<SummaryRow>,
    /// The `trades` partition, rebuild generation and offset the row reflects (its version).
    partition: i32,
    generation: i64,
    offset: i64,
}

/// One client's rows, sequence, history and subscribers.
pub struct Feed {
    rows: BTreeMap<RowKey, LiveRow>,
    seq: u64,
    history: VecDeque<Arc<Delta>>,
    subscribers: Vec<Arc<Subscriber>>,
}

/// What a new subscription starts with.
pub enum Start {
    /// The matching rows as of `seq`.
    Snapshot { seq: u64, rows: Vec<Arc<SummaryRow>> },
    /// Everything after the subscriber's `since`, as the deltas it missed (only matching rows; a
    /// delta without any is left out), up to `seq`.
    Resume { since: u64, seq: u64, deltas: Vec<(u64, Vec<Arc<SummaryRow>>)> },
}

impl Feed {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The current rows passing `filter`.
    pub fn rows(&self, filter: &Filter) -> Vec<Arc<SummaryRow>> {
        self.rows.values().filter(|r| filter.matches(&r.row)).map(|r| r.row.clone()).collect()
    }

    fn publish(&mut self, rows: Vec<Arc<SummaryRow>>, window: usize) {
        self.seq += 1;
        let delta = Arc::new(Delta::new(self.seq, rows));
        let offer = Arc::new(Offer::new(delta.clone()));
        for s in &self.subscribers {
            s.offer(&offer);
        }
        self.history.push_back(delta);
        while self.history.len() > window {
            self.history.pop_front();
        }
    }

    /// Registers `subscriber` and returns where it starts: a resume when `since` (a sequence number
    /// of this feed, from this dashboard instance) is still covered by the history, else a snapshot.
    pub fn subscribe(&mut self, subscriber: Arc<Subscriber>, since: Option<u64>) -> Start {
        let oldest_resumable = self.seq - self.history.len() as u64;
        let start = match since {
            Some(since) if since <= self.seq && since >= oldest_resumable => Start::Resume {
                since,
                seq: self.seq,
                deltas: self
                    .history
                    .iter()
                    .filter(|d| d.seq > since)
                    .filter_map(|d| {
                        let rows: Vec<_> = d.rows.iter().filter(|r| subscriber.filter.matches(r)).cloned().collect();
                        (!rows.is_empty()).then_some((d.seq, rows))
                    })
                    .collect(),
            },
            _ => Start::Snapshot { seq: self.seq, rows: self.rows(&subscriber.filter) },
        };
        self.subscribers.push(subscriber);
        start
    }

    pub fn unsubscribe(&mut self, id: u64) {
        self.subscribers.retain(|s| s.id != id);
    }
}

pub type SharedFeed = Arc<Mutex<Feed>>;

pub fn lock(feed: &SharedFeed) -> MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(|e| e.into_inner())
}

/// All clients' feeds and the marks.
pub struct Live {
    /// Identifies this instance's sequence numbers: a resume from another instance (or before a
    /// restart) gets a snapshot.
    pub epoch: String,
    feeds: RwLock<HashMap<ClientId, SharedFeed>>,
    marks: Mutex<HashMap<CompactString, Mark>>,
    /// Which clients hold rows of a symbol (a tick updates exactly those feeds).
    holders: Mutex<HashMap<CompactString, HashSet<ClientId>>>,
    resume_window: usize,
    next_subscriber: AtomicU64,
    pub metrics: Arc<Metrics>,
    /// Today's minute price bars, folded from the ticks (the `bars` view).
    pub bars: crate::bars::LiveBars,
    /// Today's day-open marks (from Postgres) for the holdings' day P&L.
    pub day_open: crate::day_open::LiveOpenMarks,
}

impl Live {
    pub fn new(resume_window: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            epoch: format!("{:016x}", rand::random::<u64>()),
            feeds: RwLock::default(),
            marks: Mutex::default(),
            holders: Mutex::default(),
            resume_window: resume_window.max(1),
            next_subscriber: AtomicU64::new(1),
            metrics,
            bars: crate::bars::LiveBars::default(),
            day_open: crate::day_open::LiveOpenMarks::default(),
        }
    }

    /// The symbols some client holds rows of.
    pub fn symbols(&self) -> Vec<CompactString> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    pub fn next_subscriber_id(&self) -> u64 {
        self.next_subscriber.fetch_add(1, Relaxed)
    }

    /// The feed of `client`, if it has rows or subscribers.
    pub fn existing_feed(&self, client: &ClientId) -> Option<SharedFeed> {
        self.feeds.read().unwrap_or_else(|e| e.into_inner()).get(client).cloned()
    }

    /// The feed of `client`, created empty when it has no rows yet.
    pub fn feed(&self, client: &ClientId) -> SharedFeed {
        if let Some(f) = self.existing_feed(client) {
            return f;
        }
        let mut feeds = self.feeds.write().unwrap_or_else(|e| e.into_inner());
        feeds
            .entry(client.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Feed {
                    rows: BTreeMap::new(),
                    seq: 0,
                    history: VecDeque::new(),
                    subscribers: Vec::new(),
                }))
            })
            .clone()
    }

    fn mark(&self, symbol: &str) -> Option<Mark> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).get(symbol).cloned()
    }

    /// Applies one changelog record; returns false when it was an older version than the row held.
    pub fn apply_change(&self, change: SummaryChange) -> bool {
        self.metrics.summaries.fetch_add(1, Relaxed);
        let key = row_key(&change.row);
        let feed = self.feed(&change.row.client_id);
        let mut feed = lock(&feed);
        if let Some(held) = feed.rows.get(&key) {
            if held.partition == change.partition && !change.supersedes(held.generation, held.offset) {
                self.metrics.stale_versions.fetch_add(1, Relaxed);
                return false;
            }
        } else {
            self.holders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(change.row.symbol.clone())
                .or_default()
                .insert(change.row.client_id.clone());
        }
        let SummaryChange { row, partition, offset, generation } = change;
        // The newer of the aggregator's mark and ours.
        let mark = match (row.mark(), self.mark(&row.symbol)) {
            (Some(a), Some(b)) => Some(if b.at > a.at { b } else { a }),
            (a, b) => a.or(b),
        };
        let row = Arc::new(row.with_mark(mark.as_ref(), Utc::now()));
        feed.rows.insert(key, LiveRow { row: row.clone(), partition, generation, offset });
        feed.publish(vec![row], self.resume_window);
        true
    }

    /// Applies a price tick: every row of the symbol gets the new mark (one delta per client).
    pub fn apply_tick(&self, tick: PriceTick) {
        self.metrics.price_ticks.fetch_add(1, Relaxed);
        self.bars.apply(&tick, Utc::now());
        let mark = Mark { price: tick.price, at: tick.at };
        {
            let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
            if marks.get(tick.symbol.as_str()).is_some_and(|old| old.at > mark.at) {
                return;
            }
            marks.insert(tick.symbol.clone(), mark.clone());
        }
        let clients: Vec<ClientId> = self
            .holders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tick.symbol.as_str())
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        let now = Utc::now();
        for client in clients {
            let feed = self.feed(&client);
            let mut feed = lock(&feed);
            let mut changed = Vec::new();
            for live in feed.rows.values_mut().filter(|r| r.row.symbol == tick.symbol) {
                if live.row.mark_at.is_some_and(|at| at > mark.at) {
                    continue;
                }
                live.row = Arc::new(live.row.with_mark(Some(&mark), now));
                changed.push(live.row.clone());
            }
            if !changed.is_empty() {
                feed.publish(changed, self.resume_window);
            }
        }
    }
}
