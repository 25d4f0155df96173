//! `tradeLog_client<CID>.<YYYY.MM.DD>.log`

use std::fmt;

use chrono::NaiveDate;

use crate::client::ClientId;

/// The (client, day) a log file holds, parsed from or formatted as its file name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogFileName {
    pub client: ClientId,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a trade log file name (expected tradeLog_client<CID>.<YYYY.MM.DD>.log)")]
pub struct InvalidFileName {
    pub name: String,
}

const PREFIX: &str = "tradeLog_client";
const SUFFIX: &str = ".log";

impl LogFileName {
    pub fn new(client: ClientId, date: NaiveDate) -> Self {
        Self { client, date }
    }

    pub fn parse(name: &str) -> Result<Self, InvalidFileName> {
        let invalid = || InvalidFileName { name: name.to_owned() };
        let rest = name.strip_prefix(PREFIX).and_then(|r| r.strip_suffix(SUFFIX)).ok_or_else(invalid)?;
        // `<CID>.<YYYY.MM.DD>`: the date is the last 10 characters.
        if rest.len() < 12 || !rest.is_char_boundary(rest.len() - 11) {
            return Err(invalid());
        }
        let (cid, dot_date) = rest.split_at(rest.len() - 11);
        let date = dot_date.strip_prefix('.').ok_or_else(invalid)?;
        let client = ClientId::parse(cid).map_err(|_| invalid())?;
        let date = NaiveDate::parse_from_str(date, "%Y.%m.%d").map_err(|_| invalid())?;
        if date.format("%Y.%m.%d").to_string() != dot_date[1..] {
            return Err(invalid());
        }
        Ok(Self { client, date })
    }
}

impl fmt::Display for LogFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}.{}{SUFFIX}", self.client, self.date.format("%Y.%m.%d"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let n = LogFileName::parse("tradeLog_client7.2026.11.22.log").unwrap();
        assert_eq!(n.client.as_str(), "7");
        assert_eq!(n.date, NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        assert_eq!(n.to_string(), "tradeLog_client7.2026.11.22.log");
    }

    #[test]
    fn rejects_others() {
        for bad in [
            "tradeLog_client.2026.11.22.log",
            "tradeLog_client7.2026.11.22.txt",
            "tradeLog_client7.2026-11-22.log",
            "tradeLog_client7.2026.13.22.log",
            "tradeLog_client7.2026.1.2.log",
            "tradeLog_client7.2026.11.22.log.tmp",
            "tradeLog_client7x2026.11.22.log",
            "other.log",
        ] {
            assert!(LogFileName::parse(bad).is_err(), "{bad}");
        }
    }
}
