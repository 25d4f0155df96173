//! One websocket subscriber's outbox: the rows changed since its last frame, **coalesced per row**.
//!
//! The fan-out ([`crate::live`]) never waits for a subscriber: it inserts the changed rows into
//! each matching outbox (replacing an older pending version of the same row) and wakes the
//! subscriber's writer. A slow browser therefore delays only itself, and its outbox holds at most
//! one version of each of its client's rows — bounded by the client's row count, not by the rate
//! of updates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::Notify;
use tradeflow_core::summary::SummaryRow;

use crate::metrics::Metrics;
use crate::row::{Filter, RowKey, row_key};

#[derive(Default)]
struct Outbox {
    rows: BTreeMap<RowKey, Arc<SummaryRow>>,
    /// Sequence number of the newest delta merged into `rows`.
    seq: u64,
    /// When the oldest pending row was offered (for the fan-out histogram).
    since: Option<std::time::Instant>,
    closed: bool,
}

/// A pending batch taken by the writer: the newest version of each changed row, through `seq`.
pub struct Batch {
    pub seq: u64,
    pub rows: Vec<Arc<SummaryRow>>,
    /// When its oldest row was offered.
    pub since: std::time::Instant,
}

pub struct Subscriber {
    pub id: u64,
    pub filter: Filter,
    outbox: std::sync::Mutex<Outbox>,
    notify: Notify,
    metrics: Arc<Metrics>,
}

impl Subscriber {
    pub fn new(id: u64, filter: Filter, metrics: Arc<Metrics>) -> Self {
        Self { id, filter, outbox: std::sync::Mutex::default(), notify: Notify::new(), metrics }
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Merges the rows of delta `seq` that pass the filter; never blocks on the subscriber.
    pub fn offer(&self, seq: u64, rows: &[Arc<SummaryRow>]) {
        let mut matched = false;
        let mut coalesced = 0;
        {
            let mut outbox = self.outbox();
            for row in rows.iter().filter(|r| self.filter.matches(r)) {
                matched = true;
                if outbox.rows.insert(row_key(row), row.clone()).is_some() {
                    coalesced += 1;
                }
            }
            if matched {
                outbox.seq = seq;
                outbox.since.get_or_insert_with(std::time::Instant::now);
            }
        }
        if coalesced > 0 {
            self.metrics.coalesced.fetch_add(coalesced, Relaxed);
        }
        if matched {
            self.notify.notify_one();
        }
    }

    /// Waits for the next batch; `None` once closed.
    pub async fn next(&self) -> Option<Batch> {
        loop {
            {
                let mut outbox = self.outbox();
                if outbox.closed {
                    return None;
                }
                if !outbox.rows.is_empty() {
                    let rows = std::mem::take(&mut outbox.rows).into_values().collect();
                    let since = outbox.since.take().unwrap_or_else(std::time::Instant::now);
                    return Some(Batch { seq: outbox.seq, rows, since });
                }
            }
            self.notify.notified().await;
        }
    }

    /// Rows currently waiting (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.outbox().rows.len()
    }

    pub fn close(&self) {
        self.outbox().closed = true;
        self.notify.notify_one();
    }
}
