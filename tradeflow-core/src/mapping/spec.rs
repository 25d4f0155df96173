//! The mapping file as written (TOML), before it is checked: every value keeps its span so an
//! error can name the line it comes from ([`super::compile`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file: one or more `[[source]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MappingSpec {
    pub source: Vec<Spanned<SourceSpec>>,
}

/// One `[[source]]`: where its files are, how their names give the identity, how a line reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceSpec {
    pub name: Spanned<String>,
    /// Default: the command's log directory (`--dir` / `--logs`).
    pub dir: Option<Spanned<String>>,
    /// A regex with the named captures `client` and `date`, matched against the whole file name.
    pub file_name: Spanned<String>,
    /// chrono format of the `date` capture, e.g. `%Y.%m.%d`.
    pub date_format: Spanned<String>,
    /// IANA zone (chrono-tz) that timestamps with an offset are converted to; default `UTC`.
    pub time_zone: Option<Spanned<String>>,
    pub line: Spanned<LineSpec>,
    pub field: Vec<Spanned<FieldSpec>>,
}

/// How a line splits into values. One flat table (not a tagged enum: toml's spans do not survive
/// serde's buffering of tagged enums); [`super::compile`] checks which keys go with which format.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineSpec {
    pub format: Spanned<LineFormatName>,
    /// `key_value`: between pairs (the seed: `|`).
    pub field_separator: Option<Spanned<String>>,
    /// `key_value`: between key and value, the first one in a pair (the seed: `:`).
    pub key_separator: Option<Spanned<String>>,
    /// `delimited`: one ASCII character (default `,`).
    pub delimiter: Option<Spanned<String>>,
    /// `delimited`: the column names, in order.
    pub columns: Option<Spanned<Vec<String>>>,
    /// `delimited`: the first line of each file is a header equal to `columns`.
    pub header: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LineFormatName {
    /// `Key<key_separator>Value` pairs joined by `field_separator` (the seed's `Key:Value|…`).
    KeyValue,
    /// Delimited columns (CSV quoting rules), one record per line.
    Delimited,
    /// One JSON object per line; keys are top-level member names.
    JsonLines,
}

/// One `[[source.field]]`: a source key or column → a record field.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSpec {
    /// The source key or column; absent: the field is the constant `default`.
    pub key: Option<Spanned<String>>,
    /// The record field (SPEC §1 mapping table), e.g. `price`.
    pub record: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<FieldType>,
    /// Timestamps only: a chrono format string, or `tradeflow` (SPEC §1's activity time).
    pub format: Option<Spanned<String>>,
    /// Sides only: source value → `B` or `S` (default `B`→`B`, `S`→`S`).
    pub values: Option<Spanned<BTreeMap<String, String>>>,
    /// Default: required when SPEC §1 says so.
    pub required: Option<Spanned<bool>>,
    /// The value used when the key is missing, read as if it were in the line.
    pub default: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FieldType {
    Integer,
    Decimal,
    Timestamp,
    Side,
    String,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Timestamp => "timestamp",
            FieldType::Side => "side",
            FieldType::String => "string",
        }
    }
}
