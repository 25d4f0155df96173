//! `Activity Time`: `YYYY.MM.DD HH:MM:SS.fffffffff` (a `D` may stand in place of the space).

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Parses an activity time. The fraction is optional and has 1–9 digits (nanoseconds).
pub fn parse_activity_time(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'.' || b[7] != b'.' || (b[10] != b' ' && b[10] != b'D') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => digits(frac)? * 10u32.pow(9 - frac.len() as u32),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    // Leap seconds are not part of the format: reject second 60.
    if second > 59 {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + d as u32;
    }
    Some(n)
}

/// Writes `YYYY.MM.DD HH:MM:SS.fffffffff` (always nine fraction digits, space separator).
pub fn render_activity_time_into(t: &NaiveDateTime, out: &mut Vec<u8>) {
    let mut buf = [0u8; 29];
    put(&mut buf[0..4], t.year().max(0) as u32);
    buf[4] = b'.';
    put(&mut buf[5..7], t.month());
    buf[7] = b'.';
    put(&mut buf[8..10], t.day());
    buf[10] = b' ';
    put(&mut buf[11..13], t.hour());
    buf[13] = b':';
    put(&mut buf[14..16], t.minute());
    buf[16] = b':';
    put(&mut buf[17..19], t.second());
    buf[19] = b'.';
    put(&mut buf[20..29], t.nanosecond().min(999_999_999));
    out.extend_from_slice(&buf);
}

fn put(slot: &mut [u8], mut n: u32) {
    for c in slot.iter_mut().rev() {
        *c = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_space_and_d_forms() {
        let a = parse_activity_time("2026.11.22 09:30:00.123456789").unwrap();
        let b = parse_activity_time("2026.11.22D09:30:00.123456789").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2026-11-22 09:30:00.123456789");
        assert_eq!(parse_activity_time("2026.11.22 09:30:00.5").unwrap().nanosecond(), 500_000_000);
        assert_eq!(parse_activity_time("2026.11.22 09:30:00").unwrap().nanosecond(), 0);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-22 09:30:00.1",
            "2026.13.22 09:30:00.1",
            "2026.02.30 09:30:00.1",
            "2026.11.22 24:00:00.1",
            "2026.11.22 09:30:60.1",
            "2026.11.22 09:30:00.",
            "2026.11.22 09:30:00.1234567890",
            "2026.11.22X09:30:00.1",
            "2026.11.22 09:3a:00.1",
        ] {
            assert_eq!(parse_activity_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn renders_nine_digits() {
        let t = parse_activity_time("2026.01.02 03:04:05.000000007").unwrap();
        let mut out = Vec::new();
        render_activity_time_into(&t, &mut out);
        assert_eq!(out, b"2026.01.02 03:04:05.000000007");
    }
}
