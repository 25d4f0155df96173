//! What travels on `trades` and `trades.dlq` (SPEC §2).
//!
//! A trade record's value is the JSON of [`TradeRecord`]: the trade and its [`TradeId`] — where it
//! was read (client, the file's date and generation, the line's byte offset). Re-reading the same
//! line gives the same id, so downstream drops a re-sent line. The key is the client id.
//!
//! A dead-letter record's value is the raw line (lossless, cut at the ingestor's cap); its headers
//! (`DLQ_*`) say where it came from and why it was rejected.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::client::ClientId;
use crate::trade::Trade;

/// The identity of a trade line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TradeId {
    pub client: ClientId,
    /// The date in the file's name.
    pub date: NaiveDate,
    /// Changes whenever the file is truncated or replaced, so new content at an old offset is new.
    pub generation: u32,
    /// Byte offset of the line in the file.
    pub offset: u64,
}

impl fmt::Display for TradeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.client, self.date, self.generation, self.offset)
    }
}

/// The value of a record on `trades`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeRecord {
    pub id: TradeId,
    pub trade: Trade,
}

impl TradeRecord {
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out);
        out
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serialising plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Header names of a dead-letter record.
pub const DLQ_FILE: &str = "tradeflow.file";
pub const DLQ_OFFSET: &str = "tradeflow.offset";
pub const DLQ_GENERATION: &str = "tradeflow.generation";
pub const DLQ_REASON: &str = "tradeflow.reason";
pub const DLQ_REASON_CODE: &str = "tradeflow.reason_code";
/// The full length of the line in bytes (the value holds at most the cap).
pub const DLQ_LINE_LEN: &str = "tradeflow.line_len";
/// `true` when the value is cut at the cap.
pub const DLQ_TRUNCATED: &str = "tradeflow.truncated";
