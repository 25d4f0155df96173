//! [`Trade`] → line, in the template's field order (absent optional fields are left out).

use std::io::Write as _;

use super::keys;
use super::time::render_activity_time_into;
use crate::trade::Trade;

/// Appends the line for `trade`, with its terminating `\n`, to `out`.
///
/// String fields must not contain `|`, `\n` or `\r` (the format cannot express them); the
/// producer never generates such values.
pub fn render_line_into(trade: &Trade, out: &mut Vec<u8>) {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        if !first {
            out.push(b'|');
        }
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.push(b':');
    };
    // Writing to a Vec<u8> cannot fail.
    if let Some(v) = trade.order_no {
        key(out, keys::ORDER_NO);
        let _ = write!(out, "{v}");
    }
    key(out, keys::ACTIVITY_TIME);
    render_activity_time_into(&trade.activity_time, out);
    if let Some(v) = trade.fill_number {
        key(out, keys::FILL_NUMBER);
        let _ = write!(out, "{v}");
    }
    if let Some(v) = &trade.response_type {
        key(out, keys::RESPONSE_TYPE);
        out.extend_from_slice(v.as_bytes());
    }
    if let Some(v) = trade.order_id {
        key(out, keys::ORDER_ID);
        let _ = write!(out, "{v}");
    }
    key(out, keys::SYMBOL);
    out.extend_from_slice(trade.symbol.as_bytes());
    key(out, keys::SIDE);
    out.extend_from_slice(trade.side.as_str().as_bytes());
    key(out, keys::PRICE);
    let _ = write!(out, "{}", trade.price);
    key(out, keys::QUANTITY);
    let _ = write!(out, "{}", trade.quantity);
    key(out, keys::ACCOUNT_ID);
    out.extend_from_slice(trade.account_id.as_bytes());
    if let Some(v) = trade.error_code {
        key(out, keys::ERROR_CODE);
        let _ = write!(out, "{v}");
    }
    if let Some(v) = trade.timestamp {
        key(out, keys::TIMESTAMP);
        let _ = write!(out, "{v}");
    }
    for (k, v) in [
        (keys::EXCHANGE_ORDER_ID, &trade.exchange_order_id),
        (keys::CHILD_RESPONSE_TYPE, &trade.child_response_type),
        (keys::DURATION, &trade.duration),
        (keys::EXCH_TS, &trade.exch_ts),
    ] {
        if let Some(v) = v {
            key(out, k);
            out.extend_from_slice(v.as_bytes());
        }
    }
    out.push(b'\n');
}

/// The line for `trade`, with its terminating `\n`.
pub fn render_line(trade: &Trade) -> Vec<u8> {
    let mut out = Vec::with_capacity(340);
    render_line_into(trade, &mut out);
    out
}
