//! Money amounts: positive 128-bit integers in minor units, carried as decimal strings in JSON.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A strictly positive amount in minor units (cents for `USD`, satoshis for `BTC`).
///
/// Legs carry direction in their side, so an amount is never zero or negative; balances, which can be
/// negative, are plain `i128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Amount(i128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be greater than zero")]
    Zero,
    #[error("must not be negative")]
    Negative,
    #[error("must be a whole number of minor units written as a decimal string of digits")]
    NotAnInteger,
    #[error("is too large for a 128-bit amount")]
    Overflow,
}

impl Amount {
    /// Parses the canonical decimal form: ASCII digits only, no sign, no leading zeros, no fraction.
    pub fn parse(s: &str) -> Result<Self, AmountError> {
        let digits = match s.strip_prefix('-') {
            Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(if rest.bytes().all(|b| b == b'0') {
                    AmountError::Zero
                } else {
                    AmountError::Negative
                });
            }
            _ => s,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotAnInteger);
        }
        if digits.bytes().all(|b| b == b'0') {
            return Err(AmountError::Zero);
        }
        if digits.starts_with('0') {
            // "007" would be a second spelling of the same value, which breaks body comparison on retries.
            return Err(AmountError::NotAnInteger);
        }
        let value: i128 = digits.parse().map_err(|_| AmountError::Overflow)?;
        Ok(Self(value))
    }

    pub fn new(value: i128) -> Result<Self, AmountError> {
        match value {
            v if v > 0 => Ok(Self(v)),
            0 => Err(AmountError::Zero),
            _ => Err(AmountError::Negative),
        }
    }

    pub fn get(self) -> i128 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<String> for Amount {
    type Error = AmountError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Amount> for String {
    fn from(a: Amount) -> Self {
        a.0.to_string()
    }
}

/// `value` minor units as people write them: thousands separated by commas and, when the currency's
/// `scale` is known, that many digits after the point (`-1,234.56`); whole numbers otherwise (`5,200`).
pub(crate) fn format_minor_units(value: i128, scale: Option<u8>) -> String {
    let scale = usize::from(scale.unwrap_or(0));
    let mut digits = value.unsigned_abs().to_string();
    if digits.len() <= scale {
        digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
    }
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 2);
    if value < 0 {
        out.push('-');
    }
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// Serde helpers for signed 128-bit balances as decimal strings, because JSON numbers lose precision in
/// JavaScript beyond 2^53.
pub mod i128_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_digits() {
        assert_eq!(Amount::parse("12345").map(Amount::get), Ok(12345));
        assert_eq!(
            Amount::parse("170141183460469231731687303715884105727").map(Amount::get),
            Ok(i128::MAX)
        );
    }

    #[test]
    fn rejects_every_other_spelling() {
        assert_eq!(Amount::parse("0"), Err(AmountError::Zero));
        assert_eq!(Amount::parse("-0"), Err(AmountError::Zero));
        assert_eq!(Amount::parse("-5"), Err(AmountError::Negative));
        assert_eq!(Amount::parse("1.5"), Err(AmountError::NotAnInteger));
        assert_eq!(Amount::parse("1e3"), Err(AmountError::NotAnInteger));
        assert_eq!(Amount::parse(" 1"), Err(AmountError::NotAnInteger));
        assert_eq!(Amount::parse("+1"), Err(AmountError::NotAnInteger));
        assert_eq!(Amount::parse("007"), Err(AmountError::NotAnInteger));
        assert_eq!(Amount::parse(""), Err(AmountError::NotAnInteger));
        assert_eq!(
            Amount::parse("170141183460469231731687303715884105728"),
            Err(AmountError::Overflow)
        );
        assert_eq!(Amount::parse(&"9".repeat(60)), Err(AmountError::Overflow));
    }

    #[test]
    fn minor_units_are_written_for_people() {
        assert_eq!(format_minor_units(5_200, None), "5,200");
        assert_eq!(format_minor_units(-1_234_567, None), "-1,234,567");
        assert_eq!(format_minor_units(999, None), "999");
        assert_eq!(format_minor_units(0, None), "0");
        assert_eq!(format_minor_units(5_200, Some(2)), "52.00");
        assert_eq!(format_minor_units(-123_456, Some(2)), "-1,234.56");
        assert_eq!(format_minor_units(7, Some(8)), "0.00000007");
        assert_eq!(format_minor_units(-5, Some(2)), "-0.05");
        assert_eq!(format_minor_units(1_000, Some(0)), "1,000");
        assert_eq!(
            format_minor_units(i128::MIN, None),
            "-170,141,183,460,469,231,731,687,303,715,884,105,728"
        );
    }

    #[test]
    fn json_carries_amounts_as_strings_only() {
        let a: Amount = serde_json::from_str("\"42\"").expect("string amount");
        assert_eq!(a.get(), 42);
        assert_eq!(serde_json::to_string(&a).expect("serialize"), "\"42\"");
        assert!(serde_json::from_str::<Amount>("42").is_err());
        assert!(serde_json::from_str::<Amount>("42.0").is_err());
    }
}
