//! One delta of a client's feed ([`crate::live`]): the rows one change or one price tick changed,
//! with its sequence number, offered to every subscriber of the client ([`crate::subscriber`]).

use std::sync::{Arc, OnceLock};

use tradeflow_core::summary::SummaryRow;

use crate::protocol::Frame;
use crate::row::row_key;

/// One delta of a client's feed: its rows in key order, each key once (one change, or a tick's
/// rows of one symbol taken from the feed's ordered map). Kept in the feed's history for resumes.
pub struct Delta {
    pub seq: u64,
    pub rows: Vec<Arc<SummaryRow>>,
}

impl Delta {
    pub(crate) fn new(seq: u64, rows: Vec<Arc<SummaryRow>>) -> Self {
        debug_assert!(rows.windows(2).all(|w| row_key(&w[0]) < row_key(&w[1])), "rows in key order, each key once");
        Self { seq, rows }
    }
}

/// A delta as offered to the client's subscribers, with its `delta` frame rendered by the first
/// subscriber that sends it whole and shared by the rest (the same text a coalesced batch of these
/// rows renders). Not kept in the history: the text lives only while an outbox still holds the
/// offer (at most one per subscriber), not for the whole resume window.
pub struct Offer {
    pub delta: Arc<Delta>,
    frame: OnceLock<String>,
}

impl Offer {
    pub(crate) fn new(delta: Arc<Delta>) -> Self {
        Self { delta, frame: OnceLock::new() }
    }

    /// The `delta` frame of all its rows (docs/protocol.md), rendered once.
    pub fn frame(&self) -> &str {
        self.frame.get_or_init(|| {
            Frame::Delta { seq: self.delta.seq, rows: self.delta.rows.iter().map(|r| r.as_ref()).collect() }.to_text()
        })
    }
}
