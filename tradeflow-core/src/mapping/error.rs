//! Why a mapping file is refused ([`MappingError`]), and why a line is a bad line under it ([`LineError`]).

use std::path::PathBuf;

use crate::log_format::ParseError;

/// A mapping file that cannot be used: refused at start, naming the file and line.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    /// `line` is 1-based; 0 when the file as a whole is wrong.
    #[error("{file}:{line}: {message}")]
    Invalid { file: String, line: usize, message: String },
}

/// Why a line is a bad line under a mapping (SPEC §1). The built-in mapping's errors are the
/// built-in parser's ([`LineError::Spec`]), word for word; a custom mapping's name the source key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error(transparent)]
    Spec(#[from] ParseError),
    #[error("field #{index} {text:?} has no '{separator}' between key and value")]
    MissingSeparator { index: usize, text: String, separator: String },
    #[error("required field {key} is missing")]
    MissingField { key: String },
    #[error("field {key} appears more than once")]
    DuplicateField { key: String },
    #[error("field {key} has bad value {value:?}: {reason}")]
    BadValue { key: String, value: String, reason: String },
    #[error("line has {found} columns; the mapping names {expected}")]
    ColumnCount { found: usize, expected: usize },
    #[error("the header line {found:?} is not the mapping's columns {expected:?}")]
    Header { found: String, expected: String },
    #[error("line is not a JSON object: {reason}")]
    Json { reason: String },
}

impl LineError {
    /// A short, stable code for metrics labels and dead-letter headers (the built-in parser's
    /// codes where the failure is the same kind).
    pub fn code(&self) -> &'static str {
        match self {
            LineError::Spec(e) => e.code(),
            LineError::MissingSeparator { .. } => "missing_separator",
            LineError::MissingField { .. } => "missing_field",
            LineError::DuplicateField { .. } => "duplicate_field",
            LineError::BadValue { .. } => "bad_value",
            LineError::ColumnCount { .. } => "column_count",
            LineError::Header { .. } => "bad_header",
            LineError::Json { .. } => "bad_json",
        }
    }

    pub(crate) fn bad_value(key: &str, value: &str, reason: String) -> Self {
        LineError::BadValue { key: key.to_owned(), value: crate::log_format::excerpt(value), reason }
    }
}
