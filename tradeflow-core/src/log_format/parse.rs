//! Line → [`Trade`]: split at `|`, each field at its first `:`, then rename and cast.

use rust_decimal::Decimal;

use super::error::{ParseError, excerpt};
use super::fields::Fields;
use super::keys;
use super::time::parse_activity_time;
use crate::edge;
use crate::trade::{Side, Trade, TradeRef};

/// The raw values of one line, borrowed, before casting.
#[derive(Default)]
struct RawFields<'a> {
    order_no: Option<&'a str>,
    activity_time: Option<&'a str>,
    fill_number: Option<&'a str>,
    response_type: Option<&'a str>,
    order_id: Option<&'a str>,
    symbol: Option<&'a str>,
    side: Option<&'a str>,
    price: Option<&'a str>,
    quantity: Option<&'a str>,
    account_id: Option<&'a str>,
    error_code: Option<&'a str>,
    timestamp: Option<&'a str>,
    exchange_order_id: Option<&'a str>,
    child_response_type: Option<&'a str>,
    duration: Option<&'a str>,
    exch_ts: Option<&'a str>,
}

/// Parses one line (without its `\n`; a trailing `\r` is ignored).
///
/// Unknown keys are ignored, a missing optional key is `None`, and anything else that is not
/// exactly the mapping spec is a [`ParseError`] naming the field and the bad value.
pub fn parse_line(line: &[u8]) -> Result<Trade, ParseError> {
    parse_line_ref(line).map(|t| t.to_trade())
}

/// [`parse_line`] into a [`TradeRef`] borrowing the line's text (the same checks, the same errors).
pub fn parse_line_ref(line: &[u8]) -> Result<TradeRef<'_>, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|e| ParseError::InvalidUtf8 { at: e.valid_up_to() })?;
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    edge::check_no_bom(line)?;
    if let Some((at, code_point)) = edge::first_control(line) {
        return Err(ParseError::ControlCharacter { field: field_at(text, at), at, code_point });
    }
    let raw = split_fields(text)?;
    cast(&raw)
}

/// Names the field holding byte `at` of `text`: its key (escaped), or "the key …" when `at` is in
/// the key itself.
fn field_at(text: &str, at: usize) -> String {
    let start = text[..at].rfind('|').map_or(0, |i| i + 1);
    let end = text[at..].find('|').map_or(text.len(), |i| at + i);
    let field = &text[start..end];
    match field.find(':') {
        Some(colon) if start + colon < at => excerpt(&field[..colon]).escape_debug().to_string(),
        _ => format!("the key of field {:?}", excerpt(field)),
    }
}

fn split_fields(text: &str) -> Result<RawFields<'_>, ParseError> {
    let mut raw = RawFields::default();
    for (index, field) in Fields::new(text.as_bytes()).enumerate() {
        let Some(colon) = field.colon else {
            return Err(ParseError::MissingSeparator { index, text: excerpt(&text[field.start..field.end]) });
        };
        // `|` and `:` are ASCII, so these are char boundaries.
        let key = &text[field.start..colon];
        let value = &text[colon + 1..field.end];
        let (slot, name) = match key {
            keys::ORDER_NO => (&mut raw.order_no, keys::ORDER_NO),
            keys::ACTIVITY_TIME => (&mut raw.activity_time, keys::ACTIVITY_TIME),
            keys::FILL_NUMBER => (&mut raw.fill_number, keys::FILL_NUMBER),
            keys::RESPONSE_TYPE => (&mut raw.response_type, keys::RESPONSE_TYPE),
            keys::ORDER_ID => (&mut raw.order_id, keys::ORDER_ID),
            keys::SYMBOL => (&mut raw.symbol, keys::SYMBOL),
            keys::SIDE => (&mut raw.side, keys::SIDE),
            keys::PRICE => (&mut raw.price, keys::PRICE),
            keys::QUANTITY => (&mut raw.quantity, keys::QUANTITY),
            keys::ACCOUNT_ID => (&mut raw.account_id, keys::ACCOUNT_ID),
            keys::ERROR_CODE => (&mut raw.error_code, keys::ERROR_CODE),
            keys::TIMESTAMP => (&mut raw.timestamp, keys::TIMESTAMP),
            keys::EXCHANGE_ORDER_ID => (&mut raw.exchange_order_id, keys::EXCHANGE_ORDER_ID),
            keys::CHILD_RESPONSE_TYPE => (&mut raw.child_response_type, keys::CHILD_RESPONSE_TYPE),
            keys::DURATION => (&mut raw.duration, keys::DURATION),
            keys::EXCH_TS => (&mut raw.exch_ts, keys::EXCH_TS),
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(ParseError::DuplicateField { field: name });
        }
    }
    Ok(raw)
}

fn cast<'a>(raw: &RawFields<'a>) -> Result<TradeRef<'a>, ParseError> {
    let activity_time = required(raw.activity_time, keys::ACTIVITY_TIME)?;
    let activity_time = parse_activity_time(activity_time)
        .ok_or_else(|| ParseError::bad_value(keys::ACTIVITY_TIME, activity_time, ACTIVITY_TIME_REASON))?;
    Ok(TradeRef {
        order_no: optional_int(raw.order_no, keys::ORDER_NO)?,
        activity_time,
        fill_number: optional_int(raw.fill_number, keys::FILL_NUMBER)?,
        response_type: text(raw.response_type, keys::RESPONSE_TYPE)?,
        order_id: optional_int(raw.order_id, keys::ORDER_ID)?,
        symbol: key_field(raw.symbol, keys::SYMBOL)?,
        side: side(required(raw.side, keys::SIDE)?)?,
        price: parse_price(required(raw.price, keys::PRICE)?)?,
        quantity: quantity(required(raw.quantity, keys::QUANTITY)?)?,
        account_id: key_field(raw.account_id, keys::ACCOUNT_ID)?,
        error_code: optional_int(raw.error_code, keys::ERROR_CODE)?,
        timestamp: optional_int(raw.timestamp, keys::TIMESTAMP)?,
        exchange_order_id: text(raw.exchange_order_id, keys::EXCHANGE_ORDER_ID)?,
        child_response_type: text(raw.child_response_type, keys::CHILD_RESPONSE_TYPE)?,
        duration: text(raw.duration, keys::DURATION)?,
        exch_ts: text(raw.exch_ts, keys::EXCH_TS)?,
    })
}

fn required<'a>(value: Option<&'a str>, field: &'static str) -> Result<&'a str, ParseError> {
    value.ok_or(ParseError::MissingField { field })
}

fn key_field<'a>(value: Option<&'a str>, field: &'static str) -> Result<&'a str, ParseError> {
    let value = required(value, field)?;
    edge::check_key(field, value)?;
    Ok(value)
}

fn text<'a>(value: Option<&'a str>, field: &'static str) -> Result<Option<&'a str>, ParseError> {
    edge::check_text(field, value)?;
    Ok(value)
}

fn optional_int<T: std::str::FromStr>(value: Option<&str>, field: &'static str) -> Result<Option<T>, ParseError> {
    value.map(|v| v.parse::<T>().map_err(|_| ParseError::bad_value(field, v, INTEGER_REASON))).transpose()
}

/// Why an activity time was refused (SPEC §1's format).
pub(crate) const ACTIVITY_TIME_REASON: &str = "expected YYYY.MM.DD HH:MM:SS.fffffffff (space or 'D' before the time)";
/// Why an optional integer was refused.
pub(crate) const INTEGER_REASON: &str = "not an integer in range";
/// Why a side was refused.
pub(crate) const SIDE_REASON: &str = "expected B or S";
/// Why a required text was refused.
pub(crate) const EMPTY_REASON: &str = "must not be empty";

fn side(value: &str) -> Result<Side, ParseError> {
    match value {
        "B" => Ok(Side::Buy),
        "S" => Ok(Side::Sell),
        _ => Err(ParseError::bad_value(keys::SIDE, value, SIDE_REASON)),
    }
}

/// A price as a log line's `Price` is read (SPEC §1, docs/edge.md): plain decimal digits with at
/// most one `.` (no sign, exponent, separators or blanks), at most 10 integer and 8 decimal
/// digits, exact (the scale as written). Its digit limits are checked on the text, so a
/// too-precise price is named so rather than as a cast failure. Price ticks are held to it too
/// ([`crate::price::PriceTick::from_json`]).
pub fn parse_price(value: &str) -> Result<Decimal, ParseError> {
    if !plain_price(value) {
        return Err(ParseError::bad_value(keys::PRICE, value, PRICE_REASON));
    }
    edge::check_price_text(value)?;
    cast_price(value).map_err(|reason| ParseError::bad_value(keys::PRICE, value, reason))
}

/// A quantity, cast and held to the edge contract.
fn quantity(value: &str) -> Result<i64, ParseError> {
    let quantity = cast_quantity(value).map_err(|reason| ParseError::bad_value(keys::QUANTITY, value, reason))?;
    edge::check_quantity(quantity)?;
    Ok(quantity)
}

/// Why a price that is not plain decimal digits was refused.
const PRICE_REASON: &str = "expected a non-negative decimal like 123.45";

/// Plain decimal digits with an optional fraction: no sign, exponent, separators or blanks.
pub(crate) fn plain_price(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && value.bytes().filter(|&b| b == b'.').count() <= 1
        && value.as_bytes()[0] != b'.'
        && value.as_bytes()[value.len() - 1] != b'.'
}

/// SPEC §1 price: plain decimal digits with an optional fraction (no sign, exponent, separators
/// or blanks), exact. The error is the reason. Shared with the mapping interpreter.
pub(crate) fn cast_price(value: &str) -> Result<Decimal, &'static str> {
    if !plain_price(value) {
        return Err(PRICE_REASON);
    }
    Decimal::from_str_exact(value).map_err(|_| "decimal out of range or too precise")
}

/// SPEC §1 quantity: ASCII digits, fits an i64. The error is the reason.
pub(crate) fn cast_quantity(value: &str) -> Result<i64, &'static str> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a non-negative integer");
    }
    value.parse::<i64>().map_err(|_| "integer out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "OrderNo:16000000000001|Activity Time:2026.11.22 09:30:00.123456789|FillNumber:600110663|ResponseType:TRADE_CONFIRM|OrderID:1|Symbol:AAPL|Side:B|Price:123.45|Quantity:42|AccountID:CQ01|ErrorCode:0|TimeStamp:1633924085|Exchange_Order_Id:483425880054544049 6|ChildResponseType:NULL_RESPONSE_MIDDLE|Duration:GTC|ExchTs:33959 25290703";

    #[test]
    fn parses_the_spec_template() {
        let t = parse_line(TEMPLATE.as_bytes()).unwrap();
        assert_eq!(t.order_no, Some(16000000000001));
        assert_eq!(t.activity_time.to_string(), "2026-11-22 09:30:00.123456789");
        assert_eq!(t.fill_number, Some(600110663));
        assert_eq!(t.response_type.as_deref(), Some("TRADE_CONFIRM"));
        assert_eq!(t.order_id, Some(1));
        assert_eq!(t.symbol, "AAPL");
        assert_eq!(t.side, Side::Buy);
        assert_eq!(t.price.to_string(), "123.45");
        assert_eq!(t.quantity, 42);
        assert_eq!(t.account_id, "CQ01");
        assert_eq!(t.error_code, Some(0));
        assert_eq!(t.timestamp, Some(1633924085));
        assert_eq!(t.exchange_order_id.as_deref(), Some("483425880054544049 6"));
        assert_eq!(t.child_response_type.as_deref(), Some("NULL_RESPONSE_MIDDLE"));
        assert_eq!(t.duration.as_deref(), Some("GTC"));
        assert_eq!(t.exch_ts.as_deref(), Some("33959 25290703"));
    }

    #[test]
    fn optional_missing_is_none_unknown_ignored_and_crlf_ok() {
        let line = "Activity Time:2026.11.22D09:30:00.1|Symbol:FB|Side:S|Price:0|Quantity:0|AccountID:CQ02|Venue:X\r";
        let t = parse_line(line.as_bytes()).unwrap();
        assert_eq!(t.order_no, None);
        assert_eq!(t.exch_ts, None);
        assert_eq!(t.side, Side::Sell);
        assert_eq!(t.quantity, 0);
    }

    fn err(line: &str) -> ParseError {
        parse_line(line.as_bytes()).unwrap_err()
    }

    #[test]
    fn each_bad_line_names_its_field() {
        assert_eq!(parse_line(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(parse_line(b"Symbol:\xff").unwrap_err(), ParseError::InvalidUtf8 { at: 7 });
        for (key, field) in [
            ("Activity Time", "Activity Time"),
            ("Symbol", "Symbol"),
            ("Side", "Side"),
            ("Price", "Price"),
            ("Quantity", "Quantity"),
            ("AccountID", "AccountID"),
        ] {
            let line: Vec<&str> = TEMPLATE.split('|').filter(|f| !f.starts_with(&format!("{key}:"))).collect();
            assert_eq!(err(&line.join("|")), ParseError::MissingField { field }, "{key}");
        }
        let bad = |from: &str, to: &str| err(&TEMPLATE.replace(from, to));
        let field_of = |e: ParseError| match e {
            ParseError::BadValue { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(field_of(bad("Side:B", "Side:X")), "Side");
        assert_eq!(field_of(bad("Price:123.45", "Price:-1")), "Price");
        assert_eq!(field_of(bad("Price:123.45", "Price:1e3")), "Price");
        assert_eq!(field_of(bad("Price:123.45", "Price:abc")), "Price");
        assert_eq!(field_of(bad("Quantity:42", "Quantity:-3")), "Quantity");
        assert_eq!(field_of(bad("Quantity:42", "Quantity:4.5")), "Quantity");
        assert_eq!(field_of(bad("Symbol:AAPL", "Symbol:")), "Symbol");
        assert_eq!(field_of(bad("AccountID:CQ01", "AccountID:")), "AccountID");
        assert_eq!(field_of(bad("OrderID:1", "OrderID:x")), "OrderID");
        assert_eq!(field_of(bad("ErrorCode:0", "ErrorCode:99999999999")), "ErrorCode");
        assert_eq!(field_of(bad("09:30:00.123456789", "9:30")), "Activity Time");
        assert!(matches!(bad("|Side:B|", "|SideB|"), ParseError::MissingSeparator { index: 6, .. }));
        assert_eq!(bad("|Side:B|", "|Side:B|Side:S|"), ParseError::DuplicateField { field: "Side" });
        let msg = bad("Price:123.45", "Price:-1").to_string();
        assert!(msg.contains("Price") && msg.contains("-1"), "{msg}");
    }
}
