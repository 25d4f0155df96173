//! One delta of a client's feed ([`crate::live`]): the rows one change or one price tick changed,
//! with its sequence number, offered to every subscriber of the client ([`crate::subscriber`]).

use std::sync::{Arc, OnceLock};

use tradeflow_core::summary::SummaryRow;

use crate::protocol::Frame;

/// One delta of a client's feed: its rows in key order, each key once (one change, or a tick's
/// rows of one symbol taken from the feed's ordered map).
pub struct Delta {
    pub seq: u64,
    pub rows: Vec<Arc<SummaryRow>>,
    /// Its `delta` frame, rendered by the first subscriber that sends it whole and shared by the
    /// rest (the same text a coalesced batch of these rows renders).
    frame: OnceLock<String>,
}

impl Delta {
    pub(crate) fn new(seq: u64, rows: Vec<Arc<SummaryRow>>) -> Self {
        Self { seq, rows, frame: OnceLock::new() }
    }

    /// The `delta` frame of all its rows (docs/protocol.md), rendered once.
    pub fn frame(&self) -> &str {
        self.frame.get_or_init(|| {
            Frame::Delta { seq: self.seq, rows: self.rows.iter().map(|r| r.as_ref()).collect() }.to_text()
        })
    }
}
