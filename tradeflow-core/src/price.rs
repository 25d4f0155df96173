//! A market price tick on `prices` (key = symbol, compacted).

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceTick {
    pub symbol: CompactString,
    pub price: Decimal,
    pub at: DateTime<Utc>,
}

impl PriceTick {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data (strings, decimals as strings, timestamps) cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
