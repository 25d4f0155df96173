//! The websocket protocol (JSON text frames; documented in docs/protocol.md).
//!
//! Subscriber → dashboard:
//! `{"op":"subscribe","client":"7","account":"ACC1"?,"symbol":"AAPL"?,"view":"rows"|"totals_by_symbol"|"totals_by_account"|"positions"|"bars"?,"epoch":"…"?,"since":12?}`,
//! `{"op":"unsubscribe"}`, `{"op":"ping","id":1?}`.
//!
//! Dashboard → subscriber: `hello`, `snapshot`, `resumed`, `delta`, `view`, `bars`, `feed`, `pong`,
//! `error` (see [`Frame`]).

use chrono::NaiveDate;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tradeflow_core::summary::SummaryRow;

use crate::feed_health::FeedState;
use crate::positions::PositionRow;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    #[default]
    Subscribe,
    Unsubscribe,
    Ping,
}

/// What a subscriber watches: its rows, or an analytic over them.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum View {
    #[default]
    Rows,
    /// Per (trade_date, symbol): totals over the client's accounts.
    TotalsBySymbol,
    /// Per (trade_date, account): totals over the account's symbols.
    TotalsByAccount,
    /// Per (account, symbol): the holding across every trade date (docs/pnl.md#holdings).
    Positions,
    /// Today's minute price bars of one symbol (`symbol` required; docs/protocol.md#the-bars-view).
    Bars,
}

impl View {
    pub fn name(self) -> &'static str {
        match self {
            View::Rows => "rows",
            View::TotalsBySymbol => "totals_by_symbol",
            View::TotalsByAccount => "totals_by_account",
            View::Positions => "positions",
            View::Bars => "bars",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub op: Op,
    pub client: Option<String>,
    pub account: Option<String>,
    pub symbol: Option<String>,
    #[serde(default)]
    pub view: View,
    /// With `since`: resume a subscription of this dashboard instance (`epoch` from its snapshot).
    pub epoch: Option<String>,
    pub since: Option<u64>,
    pub id: Option<u64>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame<'a> {
    /// First frame of every connection.
    Hello {
        epoch: &'a str,
        auth: bool,
        /// The client the token entitles to (`null` with auth off).
        client: Option<&'a str>,
        max_message_bytes: usize,
        ready: bool,
    },
    /// The matching rows at `seq`; deltas follow from `seq + 1`.
    Snapshot {
        client: &'a str,
        epoch: &'a str,
        seq: u64,
        view: View,
        ready: bool,
        rows: Vec<&'a SummaryRow>,
    },
    /// A resume was possible: the missed deltas follow, then live ones.
    Resumed {
        client: &'a str,
        epoch: &'a str,
        since: u64,
        seq: u64,
        replayed: usize,
    },
    /// Rows changed; each row is complete (newest version; several changes of one row may be
    /// merged for a slow subscriber). `seq` is the feed position this delta brings the subscriber to.
    Delta {
        seq: u64,
        rows: Vec<&'a SummaryRow>,
    },
    /// An analytic view: all groups when `snapshot`, else the groups that changed.
    View {
        view: View,
        seq: u64,
        snapshot: bool,
        rows: &'a [Total],
    },
    /// The `positions` view (a `view` frame): all holdings when `snapshot`, else the changed ones.
    #[serde(rename = "view")]
    Positions {
        view: View,
        seq: u64,
        snapshot: bool,
        rows: &'a [PositionRow],
    },
    /// The `bars` view: today's bars of `symbol` when `snapshot`, else the bar a tick changed.
    Bars {
        symbol: &'a str,
        snapshot: bool,
        bars: &'a [tradeflow_core::bars::Bar],
    },
    /// The upstream feed (Kafka `summaries` / `prices`) went down or came back
    /// (crate::feed_health); also right before a subscription's first frames while it is down.
    /// `state`: `"up"` or `"down"`; while down, `since` (RFC 3339 UTC, ms: when the feed last
    /// flowed — what is shown is as of then), `reason` (`all_brokers_down` | `no_progress`) and
    /// `upstream` (`summaries` | `prices`).
    Feed {
        state: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        upstream: Option<&'a str>,
    },
    Pong {
        id: Option<u64>,
    },
    Unsubscribed {},
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl Frame<'_> {
    pub fn to_text(&self) -> String {
        // Plain data only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `feed` frame telling `state`.
pub fn feed_frame(state: &FeedState) -> String {
    match state {
        FeedState::Up => Frame::Feed { state: "up", since: None, reason: None, upstream: None }.to_text(),
        FeedState::Down { reason, upstream, .. } => {
            let since = state.since_text();
            Frame::Feed {
                state: "down",
                since: since.as_deref(),
                reason: Some(reason.code()),
                upstream: Some(upstream.name()),
            }
            .to_text()
        }
    }
}

/// One group of a totals view.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Total {
    pub trade_date: NaiveDate,
    /// The symbol (totals_by_symbol) or the account (totals_by_account).
    pub group: CompactString,
    pub rows: u64,
    pub trade_count: i64,
    pub buy_qty: i64,
    pub sell_qty: i64,
    pub net_qty: i128,
    pub buy_notional: Decimal,
    pub sell_notional: Decimal,
    /// Sum over the rows that have a mark; `unmarked_rows` counts the others.
    pub market_value: Decimal,
    pub unmarked_rows: u64,
    /// Sum of the rows' realized P&L (docs/pnl.md).
    pub realized_pnl: Decimal,
    /// Sums over the rows that have a mark, as `market_value`.
    pub unrealized_pnl: Decimal,
    pub total_pnl: Decimal,
}

#[cfg(test)]
mod tests {
    use crate::feed_health::{DownReason, FeedState, Upstream};

    #[test]
    fn feed_frames_say_up_or_down_since_when_and_why() {
        assert_eq!(super::feed_frame(&FeedState::Up), r#"{"type":"feed","state":"up"}"#);
        let since = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:03:04Z").unwrap().to_utc();
        let down = FeedState::Down { since, reason: DownReason::AllBrokersDown, upstream: Upstream::Prices };
        assert_eq!(
            super::feed_frame(&down),
            r#"{"type":"feed","state":"down","since":"2026-12-01T12:03:04.000Z","reason":"all_brokers_down","upstream":"prices"}"#
        );
    }
}
