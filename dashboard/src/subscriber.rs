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

use crate::delta::Offer;
use crate::metrics::Metrics;
use crate::row::{Filter, RowKey, row_key};

#[derive(Default)]
struct Outbox {
    rows: BTreeMap<RowKey, Arc<SummaryRow>>,
    /// Sequence number of the newest delta merged into `rows`.
    seq: u64,
    /// When the oldest pending row was offered (for the fan-out histogram).
    since: Option<std::time::Instant>,
    /// The delta whose rows are exactly the pending ones (all of them matched and nothing else was
    /// pending): its shared frame can be sent instead of rendering the rows again.
    whole: Option<Arc<Offer>>,
    closed: bool,
}

/// A pending batch taken by the writer: the newest version of each changed row, through `seq`.
pub struct Batch {
    pub seq: u64,
    pub rows: Vec<Arc<SummaryRow>>,
    /// When its oldest row was offered.
    pub since: std::time::Instant,
    /// The delta these rows are, whole (see [`Offer::frame`]).
    pub whole: Option<Arc<Offer>>,
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

    /// Merges the rows of the offered delta that pass the filter; never blocks on the subscriber.
    pub fn offer(&self, offer: &Arc<Offer>) {
        let delta = &offer.delta;
        let mut matched = false;
        let mut all = true;
        let mut coalesced = 0;
        {
            let mut outbox = self.outbox();
            let was_empty = outbox.rows.is_empty();
            for row in &delta.rows {
                if !self.filter.matches(row) {
                    all = false;
                    continue;
                }
                matched = true;
                if outbox.rows.insert(row_key(row), row.clone()).is_some() {
                    coalesced += 1;
                }
            }
            if matched {
                outbox.seq = delta.seq;
                outbox.since.get_or_insert_with(std::time::Instant::now);
                outbox.whole = (was_empty && all).then(|| offer.clone());
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
                    return Some(Batch { seq: outbox.seq, rows, since, whole: outbox.whole.take() });
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

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Utc};
    use rust_decimal::Decimal;
    use tradeflow_core::ClientId;
    use tradeflow_core::summary::{Position, SummaryKey};

    use super::*;
    use crate::delta::Delta;
    use crate::protocol::Frame;

    fn row(account: &str, symbol: &str, trades: i64) -> Arc<SummaryRow> {
        let at = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().and_hms_opt(9, 30, 0).unwrap();
        let key = SummaryKey {
            trade_date: at.date(),
            client_id: ClientId::parse("7").unwrap(),
            account_id: account.into(),
            symbol: symbol.into(),
        };
        let p = Position {
            trade_count: trades,
            buy_qty: 10,
            sell_qty: 0,
            buy_notional: "101.5".parse().unwrap(),
            sell_notional: Decimal::ZERO,
            last_price: "10.15".parse().unwrap(),
            first_trade_at: at,
            last_trade_at: at,
        };
        Arc::new(SummaryRow::new(&key, &p, None, Utc::now()))
    }

    fn subscriber(filter: Filter) -> Subscriber {
        Subscriber::new(1, filter, Arc::default())
    }

    fn offer(seq: u64, rows: Vec<Arc<SummaryRow>>) -> Arc<Offer> {
        Arc::new(Offer::new(Arc::new(Delta::new(seq, rows))))
    }

    fn rendered(seq: u64, rows: &[Arc<SummaryRow>]) -> String {
        Frame::Delta { seq, rows: rows.iter().map(|r| r.as_ref()).collect() }.to_text()
    }

    #[tokio::test]
    async fn a_delta_taken_whole_shares_its_frame_which_equals_the_rows_rendered() {
        let s = subscriber(Filter::default());
        let delta = offer(4, vec![row("A1", "AAPL", 1), row("A1", "MSFT", 2)]);
        s.offer(&delta);
        let batch = s.next().await.unwrap();
        let whole = batch.whole.as_ref().expect("the pending rows are exactly the delta's");
        assert!(Arc::ptr_eq(whole, &delta));
        assert_eq!(whole.frame(), rendered(batch.seq, &batch.rows));
    }

    #[tokio::test]
    async fn coalesced_or_filtered_rows_are_not_taken_as_a_whole_delta() {
        let s = subscriber(Filter::default());
        s.offer(&offer(1, vec![row("A1", "AAPL", 1)]));
        s.offer(&offer(2, vec![row("A1", "MSFT", 1)]));
        let batch = s.next().await.unwrap();
        assert!(batch.whole.is_none(), "two deltas merged");
        assert_eq!((batch.seq, batch.rows.len()), (2, 2));

        let only_aapl = subscriber(Filter { account: None, symbol: Some("AAPL".into()) });
        only_aapl.offer(&offer(3, vec![row("A1", "AAPL", 2), row("A1", "MSFT", 2)]));
        let batch = only_aapl.next().await.unwrap();
        assert!(batch.whole.is_none(), "a row filtered out");
        assert_eq!(batch.rows.len(), 1);

        // A delta none of whose rows match leaves a whole pending delta whole.
        let d = offer(5, vec![row("A1", "AAPL", 3)]);
        only_aapl.offer(&d);
        only_aapl.offer(&offer(6, vec![row("A1", "MSFT", 3)]));
        let batch = only_aapl.next().await.unwrap();
        assert!(batch.whole.as_ref().is_some_and(|w| Arc::ptr_eq(w, &d)));
        assert_eq!(batch.seq, 5);
    }
}
