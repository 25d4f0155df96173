//! Casting one source value to its record field: the checks of SPEC §1 for every source format,
//! so a custom mapping refuses what the built-in one refuses (same reasons, same codes).

use chrono::format::{Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::{NaiveDateTime, TimeZone as _};
use chrono_tz::Tz;
use compact_str::CompactString;
use rust_decimal::Decimal;

use super::error::LineError;
use super::iso_time;
use super::record_field::FieldKind;
use crate::log_format::{
    ACTIVITY_TIME_REASON, EMPTY_REASON, INTEGER_REASON, SIDE_REASON, cast_price, cast_quantity, parse_activity_time,
    plain_price,
};
use crate::trade::Side;

/// A cast value, ready for its record field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Int(i64),
    Decimal(Decimal),
    Time(NaiveDateTime),
    Side(Side),
    Text(CompactString),
}

/// How a source value becomes a record value.
#[derive(Debug, Clone)]
pub(crate) enum Cast {
    Int64,
    Int32,
    Quantity,
    Price,
    Time(TimeFormat),
    /// Source value → side, exact match.
    Side(Vec<(String, Side)>),
    Text {
        non_empty: bool,
    },
}

/// How a timestamp is read.
#[derive(Debug, Clone)]
pub(crate) enum TimeFormat {
    /// SPEC §1's `YYYY.MM.DD HH:MM:SS.fffffffff` (space or `D`), read by the built-in parser.
    Spec,
    /// A chrono format without an offset: the wall-clock time as written.
    Naive(Vec<Item<'static>>),
    /// `%Y-%m-%dT%H:%M:%S%.f` (ISO 8601 without an offset): [`Self::Naive`], its canonical shape
    /// read by hand ([`super::iso_time`]).
    Iso(Vec<Item<'static>>),
    /// A chrono format with an offset (`%z`…) or epoch seconds (`%s`): the instant, converted to
    /// the source's zone's wall clock.
    Instant(Vec<Item<'static>>, Tz),
}

/// The name of [`TimeFormat::Spec`] in a mapping file.
pub(crate) const SPEC_TIME_FORMAT: &str = "tradeflow";

impl TimeFormat {
    /// Compiles a chrono format string (or `tradeflow`); the error says what is wrong with it.
    pub fn compile(format: &str, zone: Tz) -> Result<Self, String> {
        if format == SPEC_TIME_FORMAT {
            return Ok(TimeFormat::Spec);
        }
        let items = StrftimeItems::new(format)
            .parse_to_owned()
            .map_err(|_| format!("{format:?} is not a valid chrono format string"))?;
        let instant = items.iter().any(|i| {
            matches!(
                i,
                Item::Fixed(Fixed::TimezoneOffset | Fixed::TimezoneOffsetColon | Fixed::TimezoneOffsetColonZ)
                    | Item::Fixed(Fixed::TimezoneOffsetZ | Fixed::TimezoneOffsetDoubleColon)
                    | Item::Fixed(Fixed::TimezoneOffsetTripleColon | Fixed::RFC3339 | Fixed::RFC2822)
                    | Item::Numeric(Numeric::Timestamp, _)
            )
        });
        // A format that cannot read back what it writes lacks a date or a time: every line would fail.
        let sample = chrono::NaiveDate::from_ymd_opt(2026, 11, 22)
            .and_then(|d| d.and_hms_nano_opt(9, 30, 1, 123_456_789))
            .ok_or("internal: bad sample time")?;
        let written = if instant {
            zone.from_utc_datetime(&sample).format_with_items(items.iter()).to_string()
        } else {
            sample.format_with_items(items.iter()).to_string()
        };
        let compiled = if instant {
            TimeFormat::Instant(items, zone)
        } else if format == iso_time::ISO_FORMAT {
            TimeFormat::Iso(items)
        } else {
            TimeFormat::Naive(items)
        };
        if compiled.read(&written).is_none() {
            return Err(format!("{format:?} does not read back a full date and time (it wrote {written:?})"));
        }
        Ok(compiled)
    }

    /// The wall-clock time of `value`, or `None` when it does not match.
    pub fn read(&self, value: &str) -> Option<NaiveDateTime> {
        match self {
            TimeFormat::Spec => parse_activity_time(value),
            TimeFormat::Iso(items) => iso_time::read_canonical(value).or_else(|| naive(items, value)),
            TimeFormat::Naive(items) => naive(items, value),
            TimeFormat::Instant(items, zone) => {
                let mut parsed = Parsed::new();
                chrono::format::parse(&mut parsed, value, items.iter()).ok()?;
                let utc = match parsed.offset() {
                    Some(_) => parsed.to_datetime().ok()?.naive_utc(),
                    None => parsed.to_naive_datetime_with_offset(0).ok()?,
                };
                Some(zone.from_utc_datetime(&utc).naive_local())
            }
        }
    }
}

/// `value` read with a chrono format without an offset.
fn naive(items: &[Item<'static>], value: &str) -> Option<NaiveDateTime> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, value, items.iter()).ok()?;
    parsed.to_naive_datetime_with_offset(0).ok()
}

impl Cast {
    /// The cast a record field of `kind` gets.
    pub fn for_kind(kind: FieldKind, time: Option<TimeFormat>, sides: Option<Vec<(String, Side)>>) -> Self {
        match kind {
            FieldKind::Int64 => Cast::Int64,
            FieldKind::Int32 => Cast::Int32,
            FieldKind::Quantity => Cast::Quantity,
            FieldKind::Price => Cast::Price,
            FieldKind::Time => Cast::Time(time.unwrap_or(TimeFormat::Spec)),
            FieldKind::Side => {
                Cast::Side(sides.unwrap_or_else(|| vec![("B".to_owned(), Side::Buy), ("S".to_owned(), Side::Sell)]))
            }
            FieldKind::Text { non_empty } => Cast::Text { non_empty },
        }
    }

    /// [`Self::apply`], then the edge contract's limits on a price or a quantity, with the built-in
    /// parser's errors (docs/edge.md): a too-precise price is named so, not as a failed cast.
    pub fn apply_checked(&self, value: &str, key: &str) -> Result<Value, LineError> {
        if matches!(self, Cast::Price) && plain_price(value) {
            crate::edge::check_price_text(value)?;
        }
        let cast = self.apply(value).map_err(|reason| LineError::bad_value(key, value, reason))?;
        if let (Cast::Quantity, &Value::Int(quantity)) = (self, &cast) {
            crate::edge::check_quantity(quantity)?;
        }
        Ok(cast)
    }

    /// Casts one value; the error is the reason (SPEC §1's wording where the built-in parser has one).
    pub fn apply(&self, value: &str) -> Result<Value, String> {
        match self {
            Cast::Int64 => value.parse::<i64>().map(Value::Int).map_err(|_| INTEGER_REASON.to_owned()),
            Cast::Int32 => value.parse::<i32>().map(|v| Value::Int(v.into())).map_err(|_| INTEGER_REASON.to_owned()),
            Cast::Quantity => cast_quantity(value).map(Value::Int).map_err(str::to_owned),
            Cast::Price => cast_price(value).map(Value::Decimal).map_err(str::to_owned),
            Cast::Time(format) => format.read(value).map(Value::Time).ok_or_else(|| match format {
                TimeFormat::Spec => ACTIVITY_TIME_REASON.to_owned(),
                _ => "does not match the mapping's timestamp format".to_owned(),
            }),
            Cast::Side(values) => match values.iter().find(|(from, _)| from == value) {
                Some((_, side)) => Ok(Value::Side(*side)),
                None if values.len() == 2 && values.iter().all(|(f, s)| f == s.as_str()) => Err(SIDE_REASON.to_owned()),
                None => Err(format!(
                    "expected one of {}",
                    values.iter().map(|(f, _)| format!("{f:?}")).collect::<Vec<_>>().join(", ")
                )),
            },
            Cast::Text { non_empty } => {
                if *non_empty && value.is_empty() {
                    Err(EMPTY_REASON.to_owned())
                } else {
                    Ok(Value::Text(value.into()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats_read_naive_offset_and_epoch() {
        let utc = TimeFormat::compile("%Y-%m-%dT%H:%M:%S%.f", Tz::UTC).unwrap();
        assert_eq!(utc.read("2026-11-22T09:30:00.5").unwrap().to_string(), "2026-11-22 09:30:00.500");
        let ny = TimeFormat::compile("%Y-%m-%dT%H:%M:%S%.f%:z", chrono_tz::America::New_York).unwrap();
        // 14:30 UTC is 09:30 in New York in November (UTC-5).
        assert_eq!(ny.read("2026-11-22T14:30:00+00:00").unwrap().to_string(), "2026-11-22 09:30:00");
        let epoch = TimeFormat::compile("%s", Tz::UTC).unwrap();
        assert_eq!(epoch.read("1795340000").unwrap().to_string(), "2026-11-22 09:33:20");
        assert!(utc.read("2026-11-22").is_none());
    }

    #[test]
    fn bad_time_formats_are_refused() {
        assert!(TimeFormat::compile("%Y-%m-%d", Tz::UTC).unwrap_err().contains("full date and time"));
        assert!(TimeFormat::compile("%Q", Tz::UTC).unwrap_err().contains("not a valid chrono format"));
    }

    #[test]
    fn casts_keep_spec_rules() {
        assert_eq!(Cast::Price.apply("1.50"), Ok(Value::Decimal(Decimal::new(150, 2))));
        assert!(Cast::Price.apply("-1").is_err());
        assert!(Cast::Price.apply("1e3").is_err());
        assert!(Cast::Quantity.apply("4.5").is_err());
        assert!(Cast::Int32.apply("99999999999").is_err());
        let sides = Cast::Side(vec![("BUY".into(), Side::Buy), ("SELL".into(), Side::Sell)]);
        assert_eq!(sides.apply("BUY"), Ok(Value::Side(Side::Buy)));
        assert!(sides.apply("buy").unwrap_err().contains("\"BUY\""));
        assert!(Cast::Text { non_empty: true }.apply("").is_err());
        assert_eq!(Cast::Text { non_empty: false }.apply(""), Ok(Value::Text("".into())));
    }
}
