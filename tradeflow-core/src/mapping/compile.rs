//! Checking a mapping file and compiling it: every mistake is refused here, before anything runs,
//! with the line of the file it is on (toml's spans).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;

use chrono::NaiveDate;
use chrono_tz::Tz;
use regex::Regex;
use toml::Spanned;

use super::cast::{Cast, TimeFormat};
use super::error::MappingError;
use super::line_format::LineFormat;
use super::record_field::{FieldKind, RecordField};
use super::source::{FileNames, Lines, Rule, Source};
use super::spec::{FieldSpec, FieldType, LineFormatName, LineSpec, MappingSpec, SourceSpec};
use crate::trade::Side;

/// Reports a mistake at a span of the file.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn at(&self, span: Range<usize>, message: impl Into<String>) -> MappingError {
        let line = self.text.get(..span.start).map_or(0, |t| t.matches('\n').count() + 1);
        MappingError::Invalid { file: self.file.to_owned(), line, message: message.into() }
    }
}

/// Parses and checks `text` (named `file` in errors).
pub(crate) fn compile(text: &str, file: &str, builtin: Option<&MappingSpec>) -> Result<Vec<Source>, MappingError> {
    let check = Checker { file, text };
    let spec: MappingSpec = toml::from_str(text).map_err(|e| {
        let message = e.message().to_owned();
        match e.span() {
            Some(span) => check.at(span, message),
            None => MappingError::Invalid { file: file.to_owned(), line: 0, message },
        }
    })?;
    if spec.source.is_empty() {
        return Err(MappingError::Invalid { file: file.to_owned(), line: 0, message: "no [[source]]".into() });
    }
    let mut names = BTreeSet::new();
    let mut sources = Vec::new();
    for source in &spec.source {
        if !names.insert(source.get_ref().name.get_ref().clone()) {
            return Err(check.at(source.get_ref().name.span(), "two sources have this name"));
        }
        let like_builtin = builtin.and_then(|b| b.source.first());
        sources.push(compile_source(&check, source, like_builtin.map(|s| s.get_ref()))?);
    }
    Ok(sources)
}

/// Parses the TOML only (the built-in mapping, to compare others with).
pub(crate) fn parse_spec(text: &str) -> Option<MappingSpec> {
    toml::from_str(text).ok()
}

fn compile_source(
    check: &Checker<'_>,
    spanned: &Spanned<SourceSpec>,
    builtin: Option<&SourceSpec>,
) -> Result<Source, MappingError> {
    let s = spanned.get_ref();
    let zone = match &s.time_zone {
        None => Tz::UTC,
        Some(z) => {
            z.get_ref().parse::<Tz>().map_err(|_| check.at(z.span(), format!("unknown time zone {:?}", z.get_ref())))?
        }
    };
    let names = compile_names(check, s)?;
    let lines = compile_lines(check, spanned, zone)?;
    let same_as_builtin = |b: &SourceSpec| b.line == s.line && b.field == s.field;
    let names = match (builtin, names) {
        (Some(b), FileNames::Pattern { .. }) if b.file_name == s.file_name && b.date_format == s.date_format => {
            FileNames::Spec
        }
        (_, names) => names,
    };
    let lines = if builtin.is_some_and(same_as_builtin) { Lines::Spec } else { lines };
    Ok(Source { name: s.name.get_ref().clone(), dir: s.dir.as_ref().map(|d| PathBuf::from(d.get_ref())), names, lines })
}

fn compile_names(check: &Checker<'_>, s: &SourceSpec) -> Result<FileNames, MappingError> {
    let pattern = &s.file_name;
    let regex = Regex::new(&format!("^(?:{})$", pattern.get_ref()))
        .map_err(|e| check.at(pattern.span(), format!("file_name is not a valid regex: {e}")))?;
    for capture in ["client", "date"] {
        if !regex.capture_names().flatten().any(|n| n == capture) {
            return Err(check.at(pattern.span(), format!("file_name has no named capture (?P<{capture}>…)")));
        }
    }
    let date_format = s.date_format.get_ref().clone();
    let sample = NaiveDate::from_ymd_opt(2026, 11, 22).ok_or_else(|| check.at(0..0, "internal: sample date"))?;
    let mut written = String::new();
    let readable = std::fmt::write(&mut written, format_args!("{}", sample.format(&date_format))).is_ok()
        && NaiveDate::parse_from_str(&written, &date_format) == Ok(sample);
    if !readable {
        return Err(check.at(s.date_format.span(), format!("date_format {date_format:?} does not read back a date")));
    }
    Ok(FileNames::Pattern { regex, date_format })
}

fn compile_lines(check: &Checker<'_>, source: &Spanned<SourceSpec>, zone: Tz) -> Result<Lines, MappingError> {
    let s = source.get_ref();
    let line = s.line.get_ref();
    let format = compile_format(check, &s.line)?;
    let mut rules: Vec<(Rule, Range<usize>)> = Vec::new();
    for field in &s.field {
        let rule = compile_field(check, field, &format, zone)?;
        if rules.iter().any(|(r, _)| r.field == rule.field) {
            return Err(
                check.at(field.get_ref().record.span(), format!("record field {} is mapped twice", rule.field.name()))
            );
        }
        if let Some(key) = &rule.key
            && rules.iter().any(|(r, _)| r.key.as_ref() == Some(key))
        {
            return Err(check.at(field.span(), format!("source key {key:?} is mapped twice")));
        }
        rules.push((rule, field.span()));
    }
    for field in RecordField::ALL.into_iter().filter(|f| f.required()) {
        if !rules.iter().any(|(r, _)| r.field == field) {
            return Err(check.at(
                source.span(),
                format!("record field {} is required (SPEC §1) but no [[source.field]] gives it", field.name()),
            ));
        }
    }
    // The built-in parser's order of checks: activity time first, then record order.
    rules.sort_by_key(|(r, _)| (r.field != RecordField::ActivityTime, r.field.index()));
    let keys: Vec<Option<String>> = rules.iter().map(|(r, _)| r.key.clone()).collect();
    let format = match (format, line.columns.as_ref()) {
        (LineFormat::Delimited { delimiter, columns, header, .. }, _) => {
            let column_rule = columns.iter().map(|c| keys.iter().position(|k| k.as_ref() == Some(c))).collect();
            LineFormat::Delimited { delimiter, columns, column_rule, header }
        }
        (other, _) => other,
    };
    Ok(Lines::Mapped { format, rules: rules.into_iter().map(|(r, _)| r).collect(), keys })
}

fn compile_format(check: &Checker<'_>, line: &Spanned<LineSpec>) -> Result<LineFormat, MappingError> {
    let l = line.get_ref();
    let refuse = |what: &str, present: bool| {
        if present {
            Err(check
                .at(line.span(), format!("{what} does not go with format = {:?}", format_name(*l.format.get_ref()))))
        } else {
            Ok(())
        }
    };
    match l.format.get_ref() {
        LineFormatName::KeyValue => {
            refuse("delimiter/columns/header", l.delimiter.is_some() || l.columns.is_some() || l.header.is_some())?;
            let sep = |s: &Option<Spanned<String>>, name: &str| match s {
                Some(v) if !v.get_ref().is_empty() => Ok(v.get_ref().clone()),
                Some(v) => Err(check.at(v.span(), format!("{name} must not be empty"))),
                None => Err(check.at(line.span(), format!("format = \"key_value\" needs {name}"))),
            };
            Ok(LineFormat::KeyValue {
                field_separator: sep(&l.field_separator, "field_separator")?,
                key_separator: sep(&l.key_separator, "key_separator")?,
            })
        }
        LineFormatName::Delimited => {
            refuse("field_separator/key_separator", l.field_separator.is_some() || l.key_separator.is_some())?;
            let delimiter = match &l.delimiter {
                None => b',',
                Some(d) => match d.get_ref().as_bytes() {
                    [b] if b.is_ascii() && *b != b'"' && *b != b'\n' && *b != b'\r' => *b,
                    _ => {
                        return Err(
                            check.at(d.span(), "delimiter must be one ASCII character (not a quote or newline)")
                        );
                    }
                },
            };
            let columns =
                l.columns.as_ref().ok_or_else(|| check.at(line.span(), "format = \"delimited\" needs columns"))?;
            let mut seen = BTreeSet::new();
            if columns.get_ref().is_empty() || !columns.get_ref().iter().all(|c| seen.insert(c)) {
                return Err(check.at(columns.span(), "columns must be non-empty and distinct"));
            }
            if columns.get_ref().len() > 256 {
                return Err(check.at(columns.span(), "at most 256 columns"));
            }
            Ok(LineFormat::Delimited {
                delimiter,
                columns: columns.get_ref().clone(),
                column_rule: Vec::new(),
                header: l.header.as_ref().is_some_and(|h| *h.get_ref()),
            })
        }
        LineFormatName::JsonLines => {
            refuse(
                "separators/delimiter/columns/header",
                l.field_separator.is_some()
                    || l.key_separator.is_some()
                    || l.delimiter.is_some()
                    || l.columns.is_some()
                    || l.header.is_some(),
            )?;
            Ok(LineFormat::JsonLines)
        }
    }
}

fn format_name(f: LineFormatName) -> &'static str {
    match f {
        LineFormatName::KeyValue => "key_value",
        LineFormatName::Delimited => "delimited",
        LineFormatName::JsonLines => "json_lines",
    }
}

fn compile_field(
    check: &Checker<'_>,
    spanned: &Spanned<FieldSpec>,
    format: &LineFormat,
    zone: Tz,
) -> Result<Rule, MappingError> {
    let f = spanned.get_ref();
    let field = RecordField::from_name(f.record.get_ref()).ok_or_else(|| {
        let known: Vec<_> = RecordField::ALL.iter().map(|f| f.name()).collect();
        check
            .at(f.record.span(), format!("unknown record field {:?} (one of {})", f.record.get_ref(), known.join(", ")))
    })?;
    let kind = field.kind();
    let expected = match kind {
        FieldKind::Int64 | FieldKind::Int32 | FieldKind::Quantity => FieldType::Integer,
        FieldKind::Price => FieldType::Decimal,
        FieldKind::Time => FieldType::Timestamp,
        FieldKind::Side => FieldType::Side,
        FieldKind::Text { .. } => FieldType::String,
    };
    if *f.kind.get_ref() != expected {
        return Err(check.at(
            f.kind.span(),
            format!(
                "record field {} takes type = {:?}, not {:?}",
                field.name(),
                expected.as_str(),
                f.kind.get_ref().as_str()
            ),
        ));
    }
    let time = match (&f.format, expected) {
        (Some(fmt), FieldType::Timestamp) => {
            Some(TimeFormat::compile(fmt.get_ref(), zone).map_err(|e| check.at(fmt.span(), e))?)
        }
        (None, FieldType::Timestamp) => {
            return Err(check.at(spanned.span(), "a timestamp needs format (a chrono format string, or \"tradeflow\")"));
        }
        (Some(fmt), _) => return Err(check.at(fmt.span(), "format goes with type = \"timestamp\" only")),
        (None, _) => None,
    };
    let sides = match (&f.values, expected) {
        (Some(values), FieldType::Side) => Some(side_values(check, values)?),
        (Some(values), _) => return Err(check.at(values.span(), "values go with type = \"side\" only")),
        (None, _) => None,
    };
    let key = f.key.as_ref().map(|k| k.get_ref().clone());
    if let (Some(k), Some(spanned_key)) = (&key, &f.key) {
        match format {
            LineFormat::KeyValue { field_separator, key_separator }
                if k.contains(field_separator.as_str()) || k.contains(key_separator.as_str()) =>
            {
                return Err(check.at(spanned_key.span(), "key contains a separator"));
            }
            LineFormat::Delimited { columns, .. } if !columns.contains(k) => {
                return Err(check.at(spanned_key.span(), format!("key {k:?} is not one of the columns")));
            }
            _ => {}
        }
    }
    let cast = Cast::for_kind(kind, time, sides);
    let default = match &f.default {
        Some(d) => Some(cast.apply(d.get_ref()).map_err(|reason| {
            check.at(d.span(), format!("default {:?} is not a valid {}: {reason}", d.get_ref(), field.name()))
        })?),
        None => None,
    };
    let required = f.required.as_ref().map_or(field.required(), |r| *r.get_ref());
    if key.is_none() && default.is_none() {
        return Err(check.at(spanned.span(), format!("record field {} has neither a key nor a default", field.name())));
    }
    if field.required() && !required && default.is_none() {
        return Err(check.at(
            spanned.span(),
            format!("record field {} is required (SPEC §1): required = false needs a default", field.name()),
        ));
    }
    Ok(Rule { field, key, cast, required, default })
}

fn side_values(
    check: &Checker<'_>,
    values: &Spanned<BTreeMap<String, String>>,
) -> Result<Vec<(String, Side)>, MappingError> {
    let mut out = Vec::new();
    for (from, to) in values.get_ref() {
        let side = match to.as_str() {
            "B" => Side::Buy,
            "S" => Side::Sell,
            other => {
                return Err(
                    check.at(values.span(), format!("side value {from:?} maps to {other:?}: expected \"B\" or \"S\""))
                );
            }
        };
        out.push((from.clone(), side));
    }
    if !out.iter().any(|(_, s)| *s == Side::Buy) || !out.iter().any(|(_, s)| *s == Side::Sell) {
        return Err(check.at(values.span(), "values must map some value to \"B\" and some to \"S\""));
    }
    Ok(out)
}
