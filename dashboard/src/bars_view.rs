//! A websocket subscription to the `bars` view: `{"op":"subscribe","client":"7","view":"bars",
//! "symbol":"AAPL"}` → one `{"type":"bars","symbol":"AAPL","snapshot":true,"bars":[today's bars]}`
//! frame, then `{"type":"bars",…,"snapshot":false,"bars":[the changed bar]}` on every tick of the
//! symbol (docs/protocol.md#the-bars-view). A subscriber that falls more than
//! [`crate::bars::CHANNEL`] changes behind gets a fresh snapshot instead of the missed changes.

use std::sync::Arc;

use compact_str::CompactString;
use tokio::sync::broadcast::{self, error::RecvError};
use tradeflow_core::bars::Bar;

use crate::live::Live;
use crate::protocol::Frame;

pub struct BarsSubscription {
    symbol: CompactString,
    changes: broadcast::Receiver<Arc<Bar>>,
    live: Arc<Live>,
}

/// The frame of `bars` of `symbol`.
pub fn frame(symbol: &str, snapshot: bool, bars: &[Bar]) -> String {
    Frame::Bars { symbol, snapshot, bars }.to_text()
}

impl BarsSubscription {
    /// Subscribes to `symbol` (already checked) and returns the subscription and its snapshot frame.
    pub fn start(live: Arc<Live>, symbol: CompactString) -> (Self, String) {
        // Changes first, then the snapshot: a change in between is sent twice (whole bars: harmless), never lost.
        let changes = live.bars.subscribe();
        let snapshot = frame(&symbol, true, &live.bars.today(&symbol));
        (Self { symbol, changes, live }, snapshot)
    }

    /// The next frame for this subscriber: a changed bar of its symbol, or a new snapshot after
    /// falling behind. Pending forever once the dashboard stops offering changes.
    pub async fn next(&mut self) -> String {
        loop {
            match self.changes.recv().await {
                Ok(bar) if bar.symbol == self.symbol => return frame(&self.symbol, false, std::slice::from_ref(&bar)),
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(symbol = %self.symbol, missed, "bars subscriber behind: new snapshot");
                    return frame(&self.symbol, true, &self.live.bars.today(&self.symbol));
                }
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}
