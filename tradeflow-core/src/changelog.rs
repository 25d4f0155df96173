//! The live changelog record on `summaries` (compacted, key = the row's key): written by the
//! aggregator for every row trades changed, read by the dashboard. `partition`/`offset` say which
//! `trades` position the row reflects, so a reader can ignore an older version replayed after a
//! restart; `generation` counts the partition's rebuilds (`tradeflow backfill`): a rebuilt row
//! supersedes every version of an earlier generation, whatever its offset. A row's version is
//! (`generation`, `offset`) within its partition.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::summary::{Mark, Position, SummaryKey, SummaryRow};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryChange {
    pub row: SummaryRow,
    /// The `trades` partition owning the row and the offset (exclusive) the row reflects.
    pub partition: i32,
    pub offset: i64,
    /// The partition's rebuild generation (absent in records of before rebuilds existed: 0).
    #[serde(default)]
    pub generation: i64,
}

impl SummaryChange {
    pub fn new(key: &SummaryKey, position: &Position, mark: Option<&Mark>, partition: i32, offset: i64) -> Self {
        Self { row: SummaryRow::new(key, position, mark, Utc::now()), partition, offset, generation: 0 }
    }

    pub fn with_generation(self, generation: i64) -> Self {
        Self { generation, ..self }
    }

    /// Whether this version of the row is newer than (`generation`, `offset`) of the same partition.
    pub fn supersedes(&self, generation: i64, offset: i64) -> bool {
        (self.generation, self.offset) > (generation, offset)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Plain data (strings, decimals as strings, timestamps): serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
