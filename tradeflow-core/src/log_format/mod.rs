//! The trade log (SPEC §1): `Key:Value` fields joined by `|`, one trade per `\n`-terminated line,
//! one file per client per day named `tradeLog_client<CID>.<YYYY.MM.DD>.log`.
//!
//! - [`parse_line`] splits each field at its first `:`, casts per the mapping spec and names the
//!   field and value on failure ([`ParseError`]); [`parse_line_ref`] the same, borrowing the text.
//! - [`framing`]: what is a line (BOM, NUL runs, the cap), shared by the ingestor and the oracle.
//! - [`render_line`] writes the exact line format (the producer's template).
//! - [`LogFileName`] parses and formats file names.

mod error;
mod fields;
mod file_name;
pub mod framing;
mod parse;
mod render;
mod time;

pub use error::ParseError;
pub(crate) use error::excerpt;
pub use file_name::{InvalidFileName, LogFileName};
pub(crate) use parse::{
    ACTIVITY_TIME_REASON, EMPTY_REASON, INTEGER_REASON, SIDE_REASON, cast_price, cast_quantity, plain_price,
};
pub use parse::{parse_line, parse_line_ref, parse_price};
pub use render::{render_line, render_line_into};
pub use time::{parse_activity_time, render_activity_time_into};

/// The log keys in the order the template writes them.
pub mod keys {
    pub const ORDER_NO: &str = "OrderNo";
    pub const ACTIVITY_TIME: &str = "Activity Time";
    pub const FILL_NUMBER: &str = "FillNumber";
    pub const RESPONSE_TYPE: &str = "ResponseType";
    pub const ORDER_ID: &str = "OrderID";
    pub const SYMBOL: &str = "Symbol";
    pub const SIDE: &str = "Side";
    pub const PRICE: &str = "Price";
    pub const QUANTITY: &str = "Quantity";
    pub const ACCOUNT_ID: &str = "AccountID";
    pub const ERROR_CODE: &str = "ErrorCode";
    pub const TIMESTAMP: &str = "TimeStamp";
    pub const EXCHANGE_ORDER_ID: &str = "Exchange_Order_Id";
    pub const CHILD_RESPONSE_TYPE: &str = "ChildResponseType";
    pub const DURATION: &str = "Duration";
    pub const EXCH_TS: &str = "ExchTs";
}
