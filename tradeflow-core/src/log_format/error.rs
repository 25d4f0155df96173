use thiserror::Error;

/// Longest excerpt of a bad value kept in an error message.
const MAX_VALUE_EXCERPT: usize = 120;

/// Why a line is a bad line. Every variant names what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("line is not valid UTF-8 (first invalid byte at offset {at})")]
    InvalidUtf8 { at: usize },
    #[error("line is empty")]
    Empty,
    #[error("field #{index} {text:?} has no ':' between key and value")]
    MissingSeparator { index: usize, text: String },
    #[error("required field {field} is missing")]
    MissingField { field: &'static str },
    #[error("field {field} appears more than once")]
    DuplicateField { field: &'static str },
    #[error("field {field} has bad value {value:?}: {reason}")]
    BadValue { field: &'static str, value: String, reason: &'static str },
    /// The edge contract: no C0, DEL or C1 control character anywhere in a line or a string.
    #[error("{field} holds control character U+{code_point:04X} at byte {at} (the edge contract allows none)")]
    ControlCharacter { field: String, at: usize, code_point: u32 },
    #[error("field {field} is {len} bytes long; the edge contract allows at most {max}")]
    FieldTooLong { field: &'static str, len: usize, max: usize },
    #[error("Price {value:?} has more than {max} decimal places (the edge contract; nothing is rounded)")]
    PriceTooPrecise { value: String, max: u32 },
    #[error("Price {value:?} has more than {max_digits} integer digits (the edge contract)")]
    PriceTooLarge { value: String, max_digits: u32 },
    #[error("Quantity {value} is above the edge contract's limit of {max}")]
    QuantityTooLarge { value: i64, max: i64 },
    /// The edge contract: a byte-order mark (U+FEFF) is skipped at the start of a file only; a
    /// line that begins with one anywhere else (files joined with `cat`, a double BOM) is refused
    /// rather than read with the mark glued to its first key or value.
    #[error(
        "line begins with a byte-order mark (U+FEFF) but is not at the start of its file (a BOM is only skipped at offset 0: files joined together?)"
    )]
    MisplacedBom,
    /// Framing: the line is longer than the cap (it is refused whole, never cut into lines).
    #[error("line of {len} bytes is longer than the {max}-byte cap")]
    LineTooLong { len: u64, max: usize },
}

impl ParseError {
    /// A short, stable code for metrics labels and dead-letter headers.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::InvalidUtf8 { .. } => "invalid_utf8",
            ParseError::Empty => "empty_line",
            ParseError::MissingSeparator { .. } => "missing_separator",
            ParseError::MissingField { .. } => "missing_field",
            ParseError::DuplicateField { .. } => "duplicate_field",
            ParseError::BadValue { .. } => "bad_value",
            ParseError::ControlCharacter { .. } => "control_character",
            ParseError::FieldTooLong { .. } => "field_too_long",
            ParseError::PriceTooPrecise { .. } => "price_too_precise",
            ParseError::PriceTooLarge { .. } => "price_too_large",
            ParseError::QuantityTooLarge { .. } => "quantity_too_large",
            ParseError::LineTooLong { .. } => "line_too_long",
            ParseError::MisplacedBom => "misplaced_bom",
        }
    }

    pub(crate) fn bad_value(field: &'static str, value: &str, reason: &'static str) -> Self {
        ParseError::BadValue { field, value: excerpt(value), reason }
    }
}

pub(crate) fn excerpt(value: &str) -> String {
    if value.len() <= MAX_VALUE_EXCERPT {
        return value.to_owned();
    }
    let mut end = MAX_VALUE_EXCERPT;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}
