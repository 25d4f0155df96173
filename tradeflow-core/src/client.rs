//! Client identity: the `<CID>` of `tradeLog_client<CID>.<date>.log` and the Kafka key of `trades`.

use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Longest client id accepted.
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// A client id: 1–64 ASCII letters, digits, `-` or `_` (so it is safe in a file name, a Kafka key and a URL).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "CompactString", into = "CompactString")]
pub struct ClientId(CompactString);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid client id {value:?}: expected 1-{MAX_CLIENT_ID_LEN} ASCII letters, digits, '-' or '_'")]
pub struct InvalidClientId {
    pub value: String,
}

impl ClientId {
    pub fn parse(value: &str) -> Result<Self, InvalidClientId> {
        let ok = !value.is_empty()
            && value.len() <= MAX_CLIENT_ID_LEN
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(CompactString::from(value))) } else { Err(InvalidClientId { value: value.to_owned() }) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientId {
    type Err = InvalidClientId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<CompactString> for ClientId {
    type Error = InvalidClientId;
    fn try_from(value: CompactString) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ClientId> for CompactString {
    fn from(value: ClientId) -> Self {
        value.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_and_rejects_unsafe_ones() {
        assert_eq!(ClientId::parse("7").unwrap().as_str(), "7");
        assert!(ClientId::parse("desk-a_1").is_ok());
        for bad in ["", "a b", "a/b", "a.b", "ü", &"x".repeat(65)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<ClientId>("\"../x\"").is_err());
        let id: ClientId = serde_json::from_str("\"42\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"42\"");
    }
}
