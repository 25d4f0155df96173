//! Splitting a line into the raw values a mapping's fields read: key/value pairs, delimited
//! columns (CSV quoting by `csv-core`), or a JSON object (`serde_json`).

use std::borrow::Cow;

use serde::Deserialize as _;
use serde_json::value::RawValue;

use super::error::LineError;
use crate::log_format::excerpt;

/// The raw values of one line, one slot per mapping rule (`None`: the key is absent).
pub(crate) type RawValues<'a> = [Option<Cow<'a, str>>; 16];

/// How a source's lines split (compiled from [`super::spec::LineSpec`]).
#[derive(Debug, Clone)]
pub(crate) enum LineFormat {
    /// `Key<key_separator>Value` joined by `field_separator`; a pair splits at its first key separator.
    KeyValue {
        field_separator: String,
        key_separator: String,
    },
    /// Delimited columns; `column_rule[i]`: the rule column `i` feeds.
    Delimited {
        delimiter: u8,
        columns: Vec<String>,
        column_rule: Vec<Option<usize>>,
        header: bool,
    },
    JsonLines,
}

/// What a split produced besides the values.
#[derive(Debug)]
pub(crate) enum Split {
    Values,
    /// The header line of a delimited file (not a trade).
    Header,
}

/// Splits `key_value` text into `raw` (`keys[i]`: the key of rule `i`, if it reads one).
/// Mirrors SPEC §1's parser: unknown keys are ignored, a known key twice is an error, a pair
/// without the key separator is an error.
pub(crate) fn split_key_value<'a>(
    text: &'a str,
    field_separator: &str,
    key_separator: &str,
    keys: &[Option<String>],
    raw: &mut RawValues<'a>,
) -> Result<(), LineError> {
    for (index, pair) in text.split(field_separator).enumerate() {
        let Some((key, value)) = pair.split_once(key_separator) else {
            return Err(LineError::MissingSeparator {
                index,
                text: excerpt(pair),
                separator: key_separator.to_owned(),
            });
        };
        let Some(rule) = keys.iter().position(|k| k.as_deref() == Some(key)) else { continue };
        if raw[rule].replace(Cow::Borrowed(value)).is_some() {
            return Err(LineError::DuplicateField { key: key.to_owned() });
        }
    }
    Ok(())
}

/// Splits a delimited line into `out` (unquoted cell bytes) and `ends` (cell ends in `out`).
/// An empty cell is absent. On a file's first line with a header, the line must be the columns.
pub(crate) fn split_delimited<'a>(
    text: &str,
    first_line: bool,
    delimiter: u8,
    columns: &[String],
    header: bool,
    out: &'a mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(Split, Vec<&'a str>), LineError> {
    // One call with the record's terminator reads the whole record (csv-core ends a record at a
    // `\n`; the line reader removed ours).
    let mut input = Vec::with_capacity(text.len() + 1);
    input.extend_from_slice(text.as_bytes());
    input.push(b'\n');
    out.resize(input.len(), 0);
    ends.resize(columns.len() + 1, 0);
    let (result, nin, _, nends) = with_reader(delimiter, |reader| reader.read_record(&input, out, ends));
    match result {
        csv_core::ReadRecordResult::Record => {}
        csv_core::ReadRecordResult::OutputEndsFull => {
            return Err(LineError::ColumnCount { found: columns.len() + 1, expected: columns.len() });
        }
        _ => return Err(LineError::ColumnCount { found: nends, expected: columns.len() }),
    }
    if nin < input.len() {
        // A CR inside the line ends a CSV record early: the rest would be a second record.
        return Err(LineError::ColumnCount { found: nends + 1, expected: columns.len() });
    }
    let out: &'a [u8] = out;
    let mut cells = Vec::with_capacity(nends);
    let mut start = 0;
    for &end in &ends[..nends] {
        // Removing ASCII quotes from UTF-8 leaves UTF-8.
        let cell = std::str::from_utf8(&out[start..end])
            .map_err(|e| LineError::Spec(crate::log_format::ParseError::InvalidUtf8 { at: e.valid_up_to() }))?;
        cells.push(cell);
        start = end;
    }
    if nends != columns.len() {
        return Err(LineError::ColumnCount { found: nends, expected: columns.len() });
    }
    if header && first_line {
        if cells.iter().zip(columns).all(|(c, name)| c == name) {
            return Ok((Split::Header, cells));
        }
        return Err(LineError::Header { found: excerpt(text), expected: columns.join(",") });
    }
    Ok((Split::Values, cells))
}

thread_local! {
    /// csv-core readers, one per delimiter, reset before each line. Kept per thread rather than
    /// cloned per line: building one costs microseconds, and csv-core 0.1.13's `Clone` for its
    /// DFA copies only the transition table (a clone misreads the first byte as a record end).
    static READERS: std::cell::RefCell<Vec<(u8, csv_core::Reader)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_reader<T>(delimiter: u8, f: impl FnOnce(&mut csv_core::Reader) -> T) -> T {
    READERS.with_borrow_mut(|readers| {
        let at = match readers.iter().position(|(d, _)| *d == delimiter) {
            Some(at) => at,
            None => {
                readers.push((delimiter, csv_core::ReaderBuilder::new().delimiter(delimiter).build()));
                readers.len() - 1
            }
        };
        let reader = &mut readers[at].1;
        reader.reset();
        f(reader)
    })
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of a JSON object, in order, values unparsed.
struct Members<'a>(Vec<(CowStr<'a>, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry::<CowStr<'de>, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Splits a JSON object line into `raw`: a string member is its text, a number its digits as
/// written (so decimals stay exact), `null` is absent; anything else is a bad value.
pub(crate) fn split_json<'a>(text: &'a str, keys: &[Option<String>], raw: &mut RawValues<'a>) -> Result<(), LineError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let members = Members::deserialize(&mut de).map_err(|e| LineError::Json { reason: e.to_string() })?;
    de.end().map_err(|e| LineError::Json { reason: e.to_string() })?;
    for (key, value) in members.0 {
        let Some(rule) = keys.iter().position(|k| k.as_deref() == Some(&*key.0)) else { continue };
        let json = value.get();
        let text = match json.as_bytes().first() {
            Some(b'"') => {
                serde_json::from_str::<CowStr<'a>>(json).map_err(|e| LineError::Json { reason: e.to_string() })?.0
            }
            Some(b'-' | b'0'..=b'9') => Cow::Borrowed(json),
            _ if json == "null" => continue,
            _ => return Err(LineError::bad_value(&key.0, json, "expected a string or a number".to_owned())),
        };
        if raw[rule].replace(text).is_some() {
            return Err(LineError::DuplicateField { key: key.0.into_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<Option<String>> {
        names.iter().map(|n| Some((*n).to_owned())).collect()
    }

    #[test]
    fn json_strings_numbers_null_and_escapes() {
        let k = keys(&["a", "b", "c", "d"]);
        let mut raw = RawValues::default();
        split_json(r#"{"a":"x\"y","b":12.50,"c":null,"zz":[1],"d":"plain"}"#, &k, &mut raw).unwrap();
        assert_eq!(raw[0].as_deref(), Some("x\"y"));
        assert_eq!(raw[1].as_deref(), Some("12.50"));
        assert_eq!(raw[2], None);
        assert!(matches!(raw[3], Some(Cow::Borrowed("plain"))));
        let mut raw = RawValues::default();
        assert_eq!(split_json(r#"{"a":"1","a":"2"}"#, &k, &mut raw).unwrap_err().code(), "duplicate_field");
        let mut raw = RawValues::default();
        assert_eq!(split_json(r#"{"a":true}"#, &k, &mut raw).unwrap_err().code(), "bad_value");
        let mut raw = RawValues::default();
        assert_eq!(split_json(r#"{"a":"1"} x"#, &k, &mut raw).unwrap_err().code(), "bad_json");
        let mut raw = RawValues::default();
        assert_eq!(split_json("[1]", &k, &mut raw).unwrap_err().code(), "bad_json");
    }

    #[test]
    fn delimited_quotes_counts_and_header() {
        let cols: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        let (_, cells) = split_delimited(r#"1,"x,""y""",z"#, false, b',', &cols, true, &mut out, &mut ends).unwrap();
        assert_eq!(cells, vec!["1", "x,\"y\"", "z"]);
        let (split, _) = split_delimited("a,b,c", true, b',', &cols, true, &mut out, &mut ends).unwrap();
        assert!(matches!(split, Split::Header));
        let e = split_delimited("a,b,d", true, b',', &cols, true, &mut out, &mut ends).unwrap_err();
        assert_eq!(e.code(), "bad_header");
        for bad in ["1,2", "1,2,3,4", "1,2,3\r4,5,6"] {
            let e = split_delimited(bad, false, b',', &cols, true, &mut out, &mut ends).unwrap_err();
            assert_eq!(e.code(), "column_count", "{bad}");
        }
    }
}
