//! The live changelog on `summaries` (compacted, key = the row's key): every row changed by
//! trades, coalesced per poll batch, with the partition offset it reflects so a reader can ignore
//! an older version replayed after a restart.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tradeflow_core::summary::{Mark, Position, SummaryKey, SummaryRow};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryChange {
    pub row: SummaryRow,
    /// The `trades` partition owning the row and the offset (exclusive) the row reflects.
    pub partition: i32,
    pub offset: i64,
}

impl SummaryChange {
    pub fn new(key: &SummaryKey, position: &Position, mark: Option<&Mark>, partition: i32, offset: i64) -> Self {
        Self { row: SummaryRow::new(key, position, mark, Utc::now()), partition, offset }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
