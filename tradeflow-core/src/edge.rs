//! The edge contract (SPEC §1 "The edge contract"; the full table is `docs/edge.md`): what a
//! trade may hold, so that every store downstream (Postgres keys and `text`, JSON, the page) can
//! hold it and every sum stays exact in `rust_decimal`.
//!
//! One set of rules, applied in three places: the line parser
//! ([`parse_line`](crate::log_format::parse_line), so the ingestor and the oracle), and the record
//! decoder ([`TradeRecord::from_json`](crate::record::TradeRecord::from_json), so the
//! aggregator). A value outside the contract is a bad line (a refused record) with a
//! [`ParseError`] naming the field and the rule; nothing is cut, rounded or clamped.
//!
//! | what | rule |
//! |---|---|
//! | any byte of a line (keys, values, unknown fields) | no control character: C0 (U+0000–U+001F, NUL and TAB included), DEL (U+007F), C1 (U+0080–U+009F); the one CR before the LF is the line ending, not content |
//! | `Symbol`, `AccountID` | 1–[`MAX_KEY_BYTES`] bytes of UTF-8 |
//! | free text (`ResponseType`, `Exchange_Order_Id`, `ChildResponseType`, `Duration`, `ExchTs`) | at most [`MAX_TEXT_BYTES`] bytes |
//! | `Price` | ≥ 0, at most [`MAX_PRICE_INTEGER_DIGITS`] integer digits (leading zeros not counted) and [`MAX_PRICE_DECIMALS`] decimal places (every written place counts, trailing zeros too) |
//! | `Quantity` | 0 ..= [`MAX_QUANTITY`] |
//! | a line | at most [`MAX_LINE_BYTES`] bytes before its `\n` (see [`crate::log_format::framing`]) |
//!
//! **Why these numbers keep money exact.** A price has at most 10 + 8 digits, so its mantissa is
//! below 10^18; times a quantity ≤ 10^9 the notional's mantissa is below 10^27 at scale ≤ 8.
//! `rust_decimal` holds a 96-bit mantissa (≈ 7.9 × 10^28), so one line's notional is always exact,
//! and a row's notional sum stays exact for at least 79 maximal lines — for realistic fills
//! (price ≤ 10^6 with 2–4 places, quantity ≤ 10^6) for more than 10^12 lines. Beyond that
//! [`crate::exact`] refuses the sum (an error naming the row's field), never rounds it.

use rust_decimal::Decimal;

use crate::log_format::{ParseError, keys};
use crate::trade::TradeRef;

/// Longest line (bytes before its `\n`, a trailing CR included) that is a line; a longer one is
/// refused whole, identically by the ingestor and the oracle (`line_too_long`).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Most bytes of a refused line a dead letter carries: the whole line up to this size, else its
/// first bytes and a pointer (file, generation, offset, length). Below librdkafka's default
/// `message.max.bytes` (1,000,000) and the broker's (1,048,588) with room for the headers.
pub const DEAD_LETTER_VALUE_MAX: usize = 900 * 1024;
/// Longest `Symbol` and `AccountID` (bytes): they are keys of the summary row and of the page.
pub const MAX_KEY_BYTES: usize = 32;
/// Longest free-text field (bytes).
pub const MAX_TEXT_BYTES: usize = 256;
/// Most integer digits of a price (so a price is below 10^10).
pub const MAX_PRICE_INTEGER_DIGITS: u32 = 10;
/// Most decimal places of a price.
pub const MAX_PRICE_DECIMALS: u32 = 8;
/// Largest quantity of one fill.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// The UTF-8 byte-order mark: skipped at offset 0 of a file; a line that begins with one anywhere
/// else is refused (`misplaced_bom`, [`check_no_bom`]).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The first control character in `bytes` (valid UTF-8 or not): its byte offset and code point.
///
/// One branch-free pass over the bytes (it vectorises); only a line holding a `0xC2` byte (the
/// lead byte of U+0080–U+00BF) or a control byte is looked at again, to find which and where.
pub fn first_control(bytes: &[u8]) -> Option<(usize, u32)> {
    if !bytes.iter().fold(false, |seen, &b| seen | (b < 0x20) | (b == 0x7F) | (b == 0xC2)) {
        return None;
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b @ (0x00..=0x1F | 0x7F) => return Some((i, u32::from(b))),
            0xC2 => {
                if let Some(&next @ 0x80..=0x9F) = bytes.get(i + 1) {
                    return Some((i, u32::from(next)));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A line (as framed: a BOM at file offset 0 is already skipped) must not begin with a BOM: one
/// there is misplaced (files joined with `cat`, a BOM written twice) and would otherwise glue
/// itself to the first key (an unknown key: a silent null) or the first cell.
pub fn check_no_bom(line: &[u8]) -> Result<(), ParseError> {
    if line.starts_with(BOM) { Err(ParseError::MisplacedBom) } else { Ok(()) }
}

/// A required key field (`Symbol`, `AccountID`): non-empty, at most [`MAX_KEY_BYTES`].
pub fn check_key(field: &'static str, value: &str) -> Result<(), ParseError> {
    if value.is_empty() {
        return Err(ParseError::bad_value(field, value, "must not be empty"));
    }
    check_len(field, value, MAX_KEY_BYTES)
}

/// A key that arrives outside a log line (a query parameter, a price tick's symbol): [`check_key`]
/// and no control character (inside a line the line's own check has found those already).
pub fn check_outside_key(field: &'static str, value: &str) -> Result<(), ParseError> {
    check_key(field, value)?;
    match first_control(value.as_bytes()) {
        Some(_) => Err(ParseError::bad_value(field, value, "must not hold a control character")),
        None => Ok(()),
    }
}

/// A free-text field: at most [`MAX_TEXT_BYTES`].
pub fn check_text(field: &'static str, value: Option<&str>) -> Result<(), ParseError> {
    value.map_or(Ok(()), |v| check_len(field, v, MAX_TEXT_BYTES))
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), ParseError> {
    if value.len() > max {
        return Err(ParseError::FieldTooLong { field, len: value.len(), max });
    }
    Ok(())
}

/// A price as written in a line (plain digits, at most one `.`): the digit limits, checked on
/// the text before it is cast. Leading zeros of the integer part do not count.
pub fn check_price_text(value: &str) -> Result<(), ParseError> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > MAX_PRICE_DECIMALS as usize {
        return Err(ParseError::PriceTooPrecise { value: crate::log_format::excerpt(value), max: MAX_PRICE_DECIMALS });
    }
    if whole.trim_start_matches('0').len() > MAX_PRICE_INTEGER_DIGITS as usize {
        return Err(ParseError::PriceTooLarge {
            value: crate::log_format::excerpt(value),
            max_digits: MAX_PRICE_INTEGER_DIGITS,
        });
    }
    Ok(())
}

/// A price as a decimal (the record decoder's view): the same limits as [`check_price_text`].
pub fn check_price(price: Decimal) -> Result<(), ParseError> {
    if price.is_sign_negative() {
        return Err(ParseError::bad_value(keys::PRICE, &price.to_string(), "must not be negative"));
    }
    if price.scale() > MAX_PRICE_DECIMALS {
        return Err(ParseError::PriceTooPrecise { value: price.to_string(), max: MAX_PRICE_DECIMALS });
    }
    // Below 10^10 ⇔ mantissa below 10^(10 + scale) (scale ≤ 8 here, so that fits an i128 easily).
    if price.mantissa() >= 10i128.pow(MAX_PRICE_INTEGER_DIGITS + price.scale()) {
        return Err(ParseError::PriceTooLarge { value: price.to_string(), max_digits: MAX_PRICE_INTEGER_DIGITS });
    }
    Ok(())
}

/// A quantity: 0 ..= [`MAX_QUANTITY`].
pub fn check_quantity(quantity: i64) -> Result<(), ParseError> {
    if quantity < 0 {
        return Err(ParseError::bad_value(keys::QUANTITY, &quantity.to_string(), "must not be negative"));
    }
    if quantity > MAX_QUANTITY {
        return Err(ParseError::QuantityTooLarge { value: quantity, max: MAX_QUANTITY });
    }
    Ok(())
}

/// Every rule of the contract on a whole trade (the record decoder's check; the parser applies
/// the same rules field by field as it casts, and refuses control characters on the whole line).
///
/// Also refuses what no line can carry: a `|` in a string (the field separator), and an activity
/// time outside the years 0000–9999 that the log format writes.
pub fn check_trade(t: &TradeRef<'_>) -> Result<(), ParseError> {
    use chrono::Datelike as _;
    let strings = [
        (keys::SYMBOL, Some(t.symbol)),
        (keys::ACCOUNT_ID, Some(t.account_id)),
        (keys::RESPONSE_TYPE, t.response_type),
        (keys::EXCHANGE_ORDER_ID, t.exchange_order_id),
        (keys::CHILD_RESPONSE_TYPE, t.child_response_type),
        (keys::DURATION, t.duration),
        (keys::EXCH_TS, t.exch_ts),
    ];
    for (field, value) in strings {
        let Some(value) = value else { continue };
        if let Some((at, code_point)) = first_control(value.as_bytes()) {
            return Err(ParseError::ControlCharacter { field: field.to_owned(), at, code_point });
        }
        if memchr::memchr(b'|', value.as_bytes()).is_some() {
            return Err(ParseError::bad_value(field, value, "must not contain '|' (the log's field separator)"));
        }
    }
    // In the parser's order of casting, so both name the same first broken rule.
    check_text(keys::RESPONSE_TYPE, t.response_type)?;
    check_key(keys::SYMBOL, t.symbol)?;
    check_price(t.price)?;
    check_quantity(t.quantity)?;
    check_key(keys::ACCOUNT_ID, t.account_id)?;
    for (field, value) in &strings[3..] {
        check_text(field, *value)?;
    }
    if !(0..=9999).contains(&t.activity_time.year()) {
        return Err(ParseError::bad_value(
            keys::ACTIVITY_TIME,
            &t.activity_time.to_string(),
            "year outside 0000-9999 (what the log format can write)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_found_where_they_are() {
        assert_eq!(first_control(b"AAPL"), None);
        assert_eq!(first_control("£é€".as_bytes()), None); // 0xC2 0xA3 is not C1
        assert_eq!(first_control(b"AA\0PL"), Some((2, 0)));
        assert_eq!(first_control(b"A\tB"), Some((1, 9)));
        assert_eq!(first_control(b"AB\x7f"), Some((2, 0x7F)));
        assert_eq!(first_control("x\u{85}y".as_bytes()), Some((1, 0x85)));
        assert_eq!(first_control("x\u{9f}".as_bytes()), Some((1, 0x9F)));
        assert_eq!(first_control("\u{a0}".as_bytes()), None);
    }

    #[test]
    fn price_limits_agree_on_text_and_decimal() {
        for (text, ok) in [
            ("0", true),
            ("9999999999.99999999", true),
            ("0000000000009999999999", true),
            ("10000000000", false),
            ("10000000000.00000000", false),
            ("9999999999.9", true),
            ("0.00000001", true),
            ("1.123456789", false),
            ("1.000000000", false),
            ("0.1234567890123456789012345678", false),
        ] {
            assert_eq!(check_price_text(text).is_ok(), ok, "{text}");
            if let Ok(d) = Decimal::from_str_exact(text) {
                assert_eq!(
                    check_price(d).map_err(|e| e.code()),
                    check_price_text(text).map_err(|e| e.code()),
                    "{text}"
                );
            }
        }
        assert!(check_price(Decimal::new(-1, 2)).is_err());
        assert_eq!(check_quantity(MAX_QUANTITY), Ok(()));
        assert_eq!(check_quantity(MAX_QUANTITY + 1).unwrap_err().code(), "quantity_too_large");
    }
}
