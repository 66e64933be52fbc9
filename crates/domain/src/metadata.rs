//! Bounded string maps attached to accounts and transfers.

use crate::error::ParseError;
use crate::limits::{MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A small, bounded `string → string` map. Sorted so that equal maps serialize identically, which the
/// hash chain and idempotent retries rely on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    pub fn parse(map: BTreeMap<String, String>) -> Result<Self, ParseError> {
        if map.len() > MAX_METADATA_ENTRIES {
            return Err(ParseError::Metadata {
                reason: format!("at most {MAX_METADATA_ENTRIES} entries"),
            });
        }
        for (k, v) in &map {
            let key_ok = !k.is_empty()
                && k.len() <= MAX_METADATA_KEY_BYTES
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !key_ok {
                return Err(ParseError::Metadata {
                    reason: format!(
                        "keys must be 1 to {MAX_METADATA_KEY_BYTES} bytes of A-Z, a-z, 0-9, '_', '.', '-'"
                    ),
                });
            }
            if v.len() > MAX_METADATA_VALUE_BYTES {
                return Err(ParseError::Metadata {
                    reason: format!("values must be at most {MAX_METADATA_VALUE_BYTES} bytes"),
                });
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = ParseError;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::parse(map)
    }
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(m: Metadata) -> Self {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_bounded_in_entries_keys_and_values() {
        let many: BTreeMap<_, _> = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(Metadata::parse(many).is_err());
        let bad_key = BTreeMap::from([("a b".to_owned(), "x".to_owned())]);
        assert!(Metadata::parse(bad_key).is_err());
        let long_value = BTreeMap::from([("k".to_owned(), "x".repeat(513))]);
        assert!(Metadata::parse(long_value).is_err());
        let fine = BTreeMap::from([("invoice.id".to_owned(), "INV-1".to_owned())]);
        assert_eq!(
            Metadata::parse(fine).map(|m| m.get("invoice.id").map(str::to_owned)),
            Ok(Some("INV-1".to_owned()))
        );
    }
}
