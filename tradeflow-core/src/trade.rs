//! The trade record of the mapping spec (SPEC §1): one fill, typed and cast.

use std::fmt;

use chrono::NaiveDateTime;
use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    #[serde(rename = "B")]
    Buy,
    #[serde(rename = "S")]
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "B",
            Side::Sell => "S",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One trade line, renamed and cast per the mapping spec.
///
/// `activity_time` is the wall-clock time of the configured zone exactly as the log prints it
/// (nanosecond precision); its date is the summary's `trade_date`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_no: Option<i64>,
    pub activity_time: NaiveDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<i64>,
    pub symbol: CompactString,
    pub side: Side,
    /// Exact decimal, never negative.
    pub price: Decimal,
    /// Never negative; zero-quantity fills are valid.
    pub quantity: i64,
    pub account_id: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i32>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_order_id: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_response_type: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exch_ts: Option<CompactString>,
}

impl Trade {
    /// A trade with the constant fields of the SPEC §1 template line (what the mock feed writes)
    /// and the six varying ones given.
    pub fn from_template(
        activity_time: NaiveDateTime,
        symbol: &str,
        side: Side,
        price: Decimal,
        quantity: i64,
        account_id: &str,
    ) -> Self {
        Trade {
            order_no: Some(16000000000001),
            activity_time,
            fill_number: Some(600110663),
            response_type: Some("TRADE_CONFIRM".into()),
            order_id: Some(1),
            symbol: symbol.into(),
            side,
            price,
            quantity,
            account_id: account_id.into(),
            error_code: Some(0),
            timestamp: Some(1633924085),
            exchange_order_id: Some("483425880054544049 6".into()),
            child_response_type: Some("NULL_RESPONSE_MIDDLE".into()),
            duration: Some("GTC".into()),
            exch_ts: Some("33959 25290703".into()),
        }
    }

    /// price × quantity, exact.
    pub fn notional(&self) -> Decimal {
        self.price * Decimal::from(self.quantity)
    }

    /// The summary's `trade_date`: the date of `activity_time`.
    pub fn trade_date(&self) -> chrono::NaiveDate {
        self.activity_time.date()
    }
}
