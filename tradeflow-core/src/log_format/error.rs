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
