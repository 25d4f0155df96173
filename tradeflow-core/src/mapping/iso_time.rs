//! A fast reader for the most common timestamp format of custom mappings, ISO 8601 without an
//! offset (`%Y-%m-%dT%H:%M:%S%.f`, the CSV example's): the canonical shape
//! `YYYY-MM-DDTHH:MM:SS[.f…]` (1–9 fraction digits) read by hand. Anything else — another width,
//! more digits, a leap second, an impossible date — returns `None` and the caller asks chrono, so
//! what is accepted and what it means are chrono's (the tests compare the two).

use chrono::{NaiveDate, NaiveDateTime};

/// The format string this reader stands in for.
pub(crate) const ISO_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// The wall-clock time of a canonical `value`, or `None` (ask chrono).
pub(crate) fn read_canonical(value: &str) -> Option<NaiveDateTime> {
    let b = value.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20..b.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    if second >= 60 {
        return None;
    }
    NaiveDate::from_ymd_opt(year as i32, month, day)?.and_hms_nano_opt(hour, minute, second, nanos)
}

#[cfg(test)]
mod tests {
    use chrono::format::{Parsed, StrftimeItems};

    use super::*;

    fn chrono_reads(value: &str) -> Option<NaiveDateTime> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, value, StrftimeItems::new(ISO_FORMAT)).ok()?;
        parsed.to_naive_datetime_with_offset(0).ok()
    }

    #[test]
    fn what_it_reads_chrono_reads_the_same() {
        let values = [
            "2026-11-22T09:30:00",
            "2026-11-22T09:30:00.5",
            "2026-11-22T09:30:00.123456789",
            "2026-11-22T23:59:59.000000001",
            "2024-02-29T00:00:00.1",
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59.999999999",
        ];
        for v in values {
            assert!(read_canonical(v).is_some(), "{v}");
            assert_eq!(read_canonical(v), chrono_reads(v), "{v}");
        }
    }

    #[test]
    fn what_it_leaves_to_chrono() {
        for v in [
            "2026-02-30T09:30:00",            // no such date: chrono refuses too
            "2026-11-22T24:00:00",            // no such hour
            "2026-11-22T09:30:60",            // a leap second: chrono's rule
            "2026-11-22T09:30:00.1234567891", // ten digits
            "2026-11-22T09:30:00.",           // a dot without digits
            "2026-11-22 09:30:00",            // another separator
            "2026-1-22T09:30:00",             // another width
            "+2026-11-22T09:30:00",
            "2026-11-22T09:30:00Z",
            "2026-11-22T09:3a:00",
        ] {
            assert_eq!(read_canonical(v), None, "{v}");
        }
    }
}
