//! What travels on `trades` and `trades.dlq` (SPEC §2).
//!
//! A trade record's value is the JSON of [`TradeRecord`]: the trade and its [`TradeId`] — where it
//! was read (client, the file's date and generation, the line's byte offset). Re-reading the same
//! line gives the same id, so downstream drops a re-sent line. The key is the client id.
//!
//! A dead-letter record's value is the raw line (lossless, cut at the ingestor's cap); its headers
//! (`DLQ_*`) say where it came from and why it was rejected.

use std::fmt;
use std::io::Write as _;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::client::ClientId;
use crate::trade::{Trade, TradeRef};

mod decode;

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

/// Why a `trades` record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a trade record: {0}")]
    Json(serde_json::Error),
    #[error("trade outside the edge contract: {0}")]
    Edge(crate::log_format::ParseError),
}

impl RecordError {
    /// A short, stable code: `invalid_record` for JSON that is not a trade record, else the
    /// contract rule's [`ParseError::code`](crate::log_format::ParseError::code).
    pub fn code(&self) -> &'static str {
        match self {
            RecordError::Json(_) => "invalid_record",
            RecordError::Edge(e) => e.code(),
        }
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

    /// Appends the JSON of this record: what `serde_json` would write, field for field, but
    /// without its formatting machinery.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_record_json(&self.id, &self.trade.borrowed(), out);
    }

    /// Reads a record: what [`write_json`](Self::write_json) writes by a hand-written reader (the
    /// replay path reads every record), anything else by `serde_json`, with the same result; then
    /// the edge contract ([`crate::edge::check_trade`]): a record whose trade breaks it is an
    /// error, as its line would have been a bad line.
    ///
    /// Errors: [`RecordError::Json`] (not a trade record), [`RecordError::Edge`] (outside the
    /// contract); [`RecordError::code`] is a stable label for metrics and dead-letter headers.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let record = match decode::decode(bytes) {
            Some(record) => record,
            None => serde_json::from_slice(bytes).map_err(RecordError::Json)?,
        };
        crate::edge::check_trade(&record.trade.borrowed()).map_err(RecordError::Edge)?;
        Ok(record)
    }

    /// [`decode`](Self::decode) with its error as a `serde_json::Error` (its message names the
    /// broken rule).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Self::decode(bytes).map_err(|e| match e {
            RecordError::Json(e) => e,
            RecordError::Edge(e) => <serde_json::Error as serde::de::Error>::custom(format!("edge contract: {e}")),
        })
    }
}

/// Appends the JSON of the record of `trade` with identity `id`: [`TradeRecord::write_json`]
/// without owning the trade (the ingestor's per-line path).
pub fn write_record_json(id: &TradeId, t: &TradeRef<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":{\"client\":");
    json_str(out, id.client.as_str());
    out.extend_from_slice(b",\"date\":\"");
    write_date(out, id.date);
    out.extend_from_slice(b"\",\"generation\":");
    out.extend_from_slice(itoa::Buffer::new().format(id.generation).as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(itoa::Buffer::new().format(id.offset).as_bytes());
    out.extend_from_slice(b"},\"trade\":{");
    let mut w = Fields { out, first: true };
    w.int("order_no", t.order_no);
    w.key("activity_time");
    w.out.push(b'"');
    write_iso_time(w.out, &t.activity_time);
    w.out.push(b'"');
    w.int("fill_number", t.fill_number);
    w.str("response_type", t.response_type);
    w.int("order_id", t.order_id);
    w.str("symbol", Some(t.symbol));
    w.str("side", Some(t.side.as_str()));
    w.key("price");
    w.out.push(b'"');
    write_decimal(w.out, &t.price);
    w.out.push(b'"');
    w.int("quantity", Some(t.quantity));
    w.str("account_id", Some(t.account_id));
    w.int("error_code", t.error_code);
    w.int("timestamp", t.timestamp);
    w.str("exchange_order_id", t.exchange_order_id);
    w.str("child_response_type", t.child_response_type);
    w.str("duration", t.duration);
    w.str("exch_ts", t.exch_ts);
    out.extend_from_slice(b"}}");
}

struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Fields<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn int<I: itoa::Integer>(&mut self, key: &str, value: Option<I>) {
        if let Some(v) = value {
            self.key(key);
            self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        }
    }

    fn str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.key(key);
            json_str(self.out, v);
        }
    }
}

/// A JSON string literal.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape: one branch-free pass over them (it vectorises), then one copy.
    if !bytes.iter().fold(false, |escape, &b| escape | (b == b'"') | (b == b'\\') | (b < 0x20)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A decimal as its `Display` writes it (every digit of its scale), without the format machinery.
fn write_decimal(out: &mut Vec<u8>, d: &rust_decimal::Decimal) {
    if d.is_sign_negative() {
        let _ = write!(out, "{d}"); // never a price; kept exact by the general path
        return;
    }
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(d.mantissa()).as_bytes();
    let scale = d.scale() as usize;
    if scale == 0 {
        out.extend_from_slice(digits);
    } else if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(whole);
        out.push(b'.');
        out.extend_from_slice(fraction);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    }
}

/// `YYYY-MM-DD` without chrono's format machinery.
fn write_date(out: &mut Vec<u8>, d: NaiveDate) {
    use chrono::Datelike as _;
    let (y, m, day) = (d.year().clamp(0, 9999) as u32, d.month(), d.day());
    out.extend_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (day / 10) as u8,
        b'0' + (day % 10) as u8,
    ]);
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn` (what chrono's serde reads back).
fn write_iso_time(out: &mut Vec<u8>, t: &chrono::NaiveDateTime) {
    let start = out.len();
    crate::log_format::render_activity_time_into(t, out);
    // `YYYY.MM.DD HH:MM:SS.f` → `YYYY-MM-DDTHH:MM:SS.f`
    out[start + 4] = b'-';
    out[start + 7] = b'-';
    out[start + 10] = b'T';
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
/// `true` on the dead letter of a file's first line (offset 0, or 3 after a BOM: a delimited
/// mapping's header line), so a re-drive knows the line's place. Absent otherwise, and on dead
/// letters written before it was added (a re-drive then takes offset 0 as the first line, and a
/// line at offset 3 that reads as the header as the header after a BOM).
pub const DLQ_FIRST_LINE: &str = "tradeflow.first_line";
/// The file's date (`YYYY-MM-DD`): with the key (client), `DLQ_GENERATION` and `DLQ_OFFSET`, the
/// line's identity (SPEC §2). Absent on dead letters written before it was added: the file name
/// gives the date then.
pub const DLQ_DATE: &str = "tradeflow.date";
/// What became of a dead letter's line (`tradeflow dlq redrive`): `redriven` (published to
/// `trades`; the value is empty) or `dead` (still fails: the value is the line, the reason new).
/// Absent on the ingestor's own dead letters (`dead`).
pub const DLQ_STATE: &str = "tradeflow.state";
/// On a dead letter written by a re-drive: the `trades.dlq` record it follows up
/// (`PARTITION:OFFSET`).
pub const DLQ_REDRIVE_OF: &str = "tradeflow.redrive_of";
/// Header of a `trades` record published by a re-drive (value `true`): the aggregator dedupes it by
/// its set of re-driven identities instead of the file's mark (the value is an ordinary record).
pub const REDRIVE_HEADER: &str = "tradeflow.redrive";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::log_format::parse_line;

    proptest! {
        #[test]
        fn decimals_as_display_writes_them(mantissa in any::<i64>(), scale in 0u32..=28, wide in any::<bool>()) {
            let m = if wide { i128::from(mantissa) * 1_000_000_000 } else { i128::from(mantissa) };
            let d = rust_decimal::Decimal::try_from_i128_with_scale(m, scale).unwrap();
            let mut out = Vec::new();
            write_decimal(&mut out, &d);
            prop_assert_eq!(String::from_utf8(out).unwrap(), d.to_string());
        }
    }

    #[test]
    fn fast_json_reads_back_and_matches_serde() {
        let line = "OrderNo:16000000000001|Activity Time:2026.11.22 09:30:00.123456789|FillNumber:600110663|ResponseType:TRADE_CONFIRM|OrderID:1|Symbol:A\"\\Bé|Side:B|Price:123.45|Quantity:42|AccountID:CQ01|ErrorCode:-3|TimeStamp:1633924085|Exchange_Order_Id:483425880054544049 6|ChildResponseType:NULL_RESPONSE_MIDDLE|Duration:GTC|ExchTs:33959 25290703";
        let record = TradeRecord {
            id: TradeId {
                client: ClientId::parse("7").unwrap(),
                date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
                generation: 3,
                offset: 12345,
            },
            trade: parse_line(line.as_bytes()).unwrap(),
        };
        let fast = record.to_json();
        assert_eq!(TradeRecord::from_json(&fast).unwrap(), record);
        // The ingestor's path (borrowed parse, then the record) writes the same bytes.
        let mut borrowed = Vec::new();
        write_record_json(&record.id, &crate::log_format::parse_line_ref(line.as_bytes()).unwrap(), &mut borrowed);
        assert_eq!(borrowed, fast);
        let a: serde_json::Value = serde_json::from_slice(&fast).unwrap();
        let b = serde_json::to_value(&record).unwrap();
        assert_eq!(a["id"], b["id"]);
        for field in ["symbol", "price", "order_no", "error_code", "side", "exch_ts"] {
            assert_eq!(a["trade"][field], b["trade"][field], "{field}");
        }
    }
}
