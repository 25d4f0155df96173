//! One compiled source: which file names it owns (and the identity they give), and how its lines
//! become trades.

use std::borrow::Cow;
use std::path::PathBuf;

use chrono::NaiveDate;
use regex::Regex;

use super::cast::{Cast, Value};
use super::error::LineError;
use super::line_format::{LineFormat, RawValues, Split, split_delimited, split_json, split_key_value};
use super::record_field::RecordField;
use crate::client::ClientId;
use crate::log_format::{LogFileName, ParseError, parse_line_ref};
use crate::trade::{Side, Trade, TradeRef};

/// A source of a [`super::Mapping`]: a family of trade log files with one name pattern and one
/// line format.
#[derive(Debug, Clone)]
pub struct Source {
    /// The `name` of its `[[source]]` (unique in the mapping).
    pub name: String,
    /// Its directory; `None`: the command's log directory.
    pub dir: Option<PathBuf>,
    pub(crate) names: FileNames,
    pub(crate) lines: Lines,
}

/// How file names give (client, date).
#[derive(Debug, Clone)]
pub(crate) enum FileNames {
    /// SPEC §1's `tradeLog_client<CID>.<YYYY.MM.DD>.log`, read by [`LogFileName::parse`].
    Spec,
    /// A whole-name regex with the captures `client` and `date`, the date in `date_format`.
    Pattern { regex: Regex, date_format: String },
}

/// How lines become trades.
#[derive(Debug, Clone)]
pub(crate) enum Lines {
    /// SPEC §1's `Key:Value|…` with the SPEC §1 mapping: the hand-tuned parser ([`parse_line_ref`]).
    Spec,
    /// The interpreter: split by `format`, then each rule casts its value.
    Mapped { format: LineFormat, rules: Vec<Rule>, keys: Vec<Option<String>> },
}

/// One `[[source.field]]`, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub field: RecordField,
    /// Source key or column (`None`: the default is a constant).
    pub key: Option<String>,
    pub cast: Cast,
    pub required: bool,
    pub default: Option<Value>,
}

/// A parsed line.
// The built-in parser's borrowed trade stays unboxed: it is the default path, per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    /// By the built-in parser, borrowing the line.
    Spec(TradeRef<'a>),
    /// By the mapping interpreter.
    Mapped(Box<Trade>),
    /// A delimited file's header line: not a trade, not a bad line.
    Header,
}

impl Parsed<'_> {
    /// The trade, if the line is one.
    pub fn trade(&self) -> Option<TradeRef<'_>> {
        match self {
            Parsed::Spec(t) => Some(*t),
            Parsed::Mapped(t) => Some(t.borrowed()),
            Parsed::Header => None,
        }
    }
}

impl Source {
    /// The (client, date) of a file name this source owns; `None`: not one of its files (or the
    /// captures are not a valid client id and date).
    pub fn log_file_name(&self, file_name: &str) -> Option<LogFileName> {
        match &self.names {
            FileNames::Spec => LogFileName::parse(file_name).ok(),
            FileNames::Pattern { regex, date_format } => {
                let caps = regex.captures(file_name)?;
                let client = ClientId::parse(caps.name("client")?.as_str()).ok()?;
                let date = NaiveDate::parse_from_str(caps.name("date")?.as_str(), date_format).ok()?;
                Some(LogFileName::new(client, date))
            }
        }
    }

    /// Whether lines are read by the built-in (SPEC §1) parser.
    pub fn is_spec_format(&self) -> bool {
        matches!(self.lines, Lines::Spec)
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored). `first_line`: the line is
    /// its file's first — at offset [`first_line_offset`](crate::log_format::framing::first_line_offset),
    /// 0 or 3 after a BOM — which a delimited source with `header = true` reads as its header.
    pub fn parse_line<'a>(&self, line: &'a [u8], first_line: bool) -> Result<Parsed<'a>, LineError> {
        match &self.lines {
            Lines::Spec => Ok(Parsed::Spec(parse_line_ref(line)?)),
            Lines::Mapped { format, rules, keys } => parse_mapped(format, rules, keys, line, first_line),
        }
    }
}

fn parse_mapped<'a>(
    format: &LineFormat,
    rules: &[Rule],
    keys: &[Option<String>],
    line: &'a [u8],
    first_line: bool,
) -> Result<Parsed<'a>, LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|e| ParseError::InvalidUtf8 { at: e.valid_up_to() })?;
    if text.is_empty() {
        return Err(ParseError::Empty.into());
    }
    crate::edge::check_no_bom(line)?;
    let (mut out, mut ends) = (Vec::new(), Vec::new());
    let mut raw = RawValues::default();
    match format {
        LineFormat::KeyValue { field_separator, key_separator } => {
            split_key_value(text, field_separator, key_separator, keys, &mut raw)?
        }
        LineFormat::JsonLines => split_json(text, keys, &mut raw)?,
        LineFormat::Delimited { delimiter, columns, column_rule, header } => {
            let (split, cells) = split_delimited(text, first_line, *delimiter, columns, *header, &mut out, &mut ends)?;
            if let Split::Header = split {
                return Ok(Parsed::Header);
            }
            for (cell, rule) in cells.into_iter().zip(column_rule) {
                if let (Some(rule), false) = (rule, cell.is_empty()) {
                    raw[*rule] = Some(Cow::Borrowed(cell));
                }
            }
        }
    }
    let mut values: [Option<Value>; 16] = Default::default();
    for (rule, raw) in rules.iter().zip(raw.iter_mut()) {
        let key = || rule.key.clone().unwrap_or_else(|| rule.field.name().to_owned());
        values[rule.field.index()] = match raw.take() {
            Some(text) => Some(rule.cast.apply_checked(&text, &key())?),
            None => match &rule.default {
                Some(default) => Some(default.clone()),
                None if rule.required => return Err(LineError::MissingField { key: key() }),
                None => None,
            },
        };
    }
    let trade = assemble(values)?;
    // The edge contract holds whatever the source format (docs/edge.md).
    crate::edge::check_trade(&trade.borrowed())?;
    Ok(Parsed::Mapped(Box::new(trade)))
}

/// The trade of cast values (indexed by [`RecordField::index`]).
fn assemble(mut v: [Option<Value>; 16]) -> Result<Trade, LineError> {
    let mut take = |f: RecordField| v[f.index()].take();
    let missing = |f: RecordField| LineError::MissingField { key: f.name().to_owned() };
    let int = |x: Option<Value>| match x {
        Some(Value::Int(i)) => Some(i),
        _ => None,
    };
    let text = |x: Option<Value>| match x {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    };
    let activity_time = match take(RecordField::ActivityTime) {
        Some(Value::Time(t)) => t,
        _ => return Err(missing(RecordField::ActivityTime)),
    };
    let side: Side = match take(RecordField::Side) {
        Some(Value::Side(s)) => s,
        _ => return Err(missing(RecordField::Side)),
    };
    let price = match take(RecordField::Price) {
        Some(Value::Decimal(p)) => p,
        _ => return Err(missing(RecordField::Price)),
    };
    let error_code = match int(take(RecordField::ErrorCode)) {
        Some(code) => Some(i32::try_from(code).map_err(|_| missing(RecordField::ErrorCode))?),
        None => None,
    };
    Ok(Trade {
        order_no: int(take(RecordField::OrderNo)),
        activity_time,
        fill_number: int(take(RecordField::FillNumber)),
        response_type: text(take(RecordField::ResponseType)),
        order_id: int(take(RecordField::OrderId)),
        symbol: text(take(RecordField::Symbol)).ok_or_else(|| missing(RecordField::Symbol))?,
        side,
        price,
        quantity: int(take(RecordField::Quantity)).ok_or_else(|| missing(RecordField::Quantity))?,
        account_id: text(take(RecordField::AccountId)).ok_or_else(|| missing(RecordField::AccountId))?,
        error_code,
        timestamp: int(take(RecordField::Timestamp)),
        exchange_order_id: text(take(RecordField::ExchangeOrderId)),
        child_response_type: text(take(RecordField::ChildResponseType)),
        duration: text(take(RecordField::Duration)),
        exch_ts: text(take(RecordField::ExchTs)),
    })
}

impl Source {
    /// This source read the built-in way (the built-in mapping itself).
    pub(crate) fn into_spec(self) -> Self {
        Source { names: FileNames::Spec, lines: Lines::Spec, ..self }
    }

    /// This source read by the interpreter even if it equals the built-in one (tests compare the two).
    #[cfg(test)]
    pub(crate) fn has_interpreter(&self) -> bool {
        matches!(self.lines, Lines::Mapped { .. })
    }

    /// Whether file names are read as SPEC §1's `tradeLog_client<CID>.<YYYY.MM.DD>.log`.
    pub fn has_spec_names(&self) -> bool {
        matches!(self.names, FileNames::Spec)
    }
}
