//! Ledger identifiers: the stream id, the tenancy unit and the first part of every routing key.

use crate::error::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A ledger's id, chosen by its creator (`main`, `acme-eu`). Lowercase letters, digits, `_` and `-`
/// only: it appears in URLs, in RabbitMQ routing keys (where `.` separates words) and as the stream id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LedgerId(String);

impl LedgerId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::LedgerId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LedgerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for LedgerId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<LedgerId> for String {
    fn from(id: LedgerId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_ids_are_url_and_routing_key_safe() {
        assert!(LedgerId::parse("main").is_ok());
        assert!(LedgerId::parse("acme-eu_2").is_ok());
        for bad in ["", "Main", "a.b", "-a", "a b", "a/b", &"a".repeat(65)] {
            assert_eq!(LedgerId::parse(bad), Err(ParseError::LedgerId), "{bad:?}");
        }
    }
}
