//! Accounts: hierarchical codes, types with their normal side, currencies, limits and status.

use crate::balance::Totals;
use crate::error::ParseError;
use crate::limits::{MAX_ACCOUNT_CODE_BYTES, MAX_ACCOUNT_CODE_DEPTH};
use crate::metadata::Metadata;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An account code such as `assets:bank:checking`: lowercase segments joined by `:`, so reports can roll
/// balances up the hierarchy by prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountCode(String);

impl AccountCode {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let invalid = |reason: &str| ParseError::AccountCode {
            reason: reason.to_owned(),
        };
        if s.is_empty() || s.len() > MAX_ACCOUNT_CODE_BYTES {
            return Err(invalid("must be 1 to 128 bytes long"));
        }
        let segments: Vec<&str> = s.split(':').collect();
        if segments.len() > MAX_ACCOUNT_CODE_DEPTH {
            return Err(invalid("must have at most 10 segments"));
        }
        let valid_segment = |seg: &&str| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if !segments.iter().all(valid_segment) {
            return Err(invalid(
                "segments separated by ':' must be non-empty and use only a-z, 0-9, '_' and '-'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code and each of its ancestors, shortest first (`a`, `a:b`, `a:b:c`).
    pub fn ancestors_and_self(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices(':')
            .map(|(i, _)| &self.0[..i])
            .chain(std::iter::once(self.0.as_str()))
    }
}

impl fmt::Display for AccountCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AccountCode {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AccountCode> for String {
    fn from(c: AccountCode) -> Self {
        c.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn opposite(self) -> Self {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

impl AccountType {
    /// The side on which the account's balance is normally carried; balances are reported on this side.
    pub fn normal_side(self) -> Side {
        match self {
            AccountType::Asset | AccountType::Expense => Side::Debit,
            AccountType::Liability | AccountType::Equity | AccountType::Revenue => Side::Credit,
        }
    }
}

/// An asset code such as `USD` or `BTC`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CurrencyCode(String);

impl CurrencyCode {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=12).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::CurrencyCode)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CurrencyCode {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CurrencyCode> for String {
    fn from(c: CurrencyCode) -> Self {
        c.0
    }
}

/// A currency with its fixed scale: amounts are integers in units of 10^-scale.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Currency {
    pub code: CurrencyCode,
    pub scale: u8,
}

impl Currency {
    /// The largest scale we accept; 18 covers every fiat currency and most tokens.
    pub const MAX_SCALE: u8 = 18;

    pub fn new(code: CurrencyCode, scale: u8) -> Result<Self, ParseError> {
        if scale > Self::MAX_SCALE {
            return Err(ParseError::CurrencyScale { scale });
        }
        Ok(Self { code, scale })
    }
}

/// Bounds on an account's balance, measured on its normal side. `floor: Some(0)` is the usual
/// "may not go negative"; pending outflows count against the floor and pending inflows against the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Limits {
    #[serde(
        default,
        with = "opt_i128_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub floor: Option<i128>,
    #[serde(
        default,
        with = "opt_i128_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ceiling: Option<i128>,
}

impl Limits {
    pub fn new(floor: Option<i128>, ceiling: Option<i128>) -> Result<Self, ParseError> {
        if let (Some(f), Some(c)) = (floor, ceiling)
            && f > c
        {
            return Err(ParseError::Limits);
        }
        Ok(Self { floor, ceiling })
    }
}

mod opt_i128_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<i128>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i128>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(D::Error::custom))
            .transpose()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Open,
    Frozen,
    Closed,
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountStatus::Open => "open",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closed => "closed",
        })
    }
}

/// An account as the ledger knows it, with its running totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub code: AccountCode,
    pub account_type: AccountType,
    pub currency: Currency,
    pub limits: Limits,
    pub status: AccountStatus,
    pub metadata: Metadata,
    pub totals: Totals,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_codes_are_lowercase_colon_separated_segments() {
        assert!(AccountCode::parse("assets:bank:checking").is_ok());
        assert!(AccountCode::parse("expenses:travel_2026-q1").is_ok());
        for bad in ["", "Assets", "a::b", ":a", "a:", "a b", "a/b", "ü"] {
            assert!(
                AccountCode::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(AccountCode::parse(&"a".repeat(129)).is_err());
        assert!(AccountCode::parse(&["a"; 11].join(":")).is_err());
    }

    #[test]
    fn ancestors_roll_up_from_the_root() {
        let code = AccountCode::parse("assets:bank:checking").expect("valid");
        let all: Vec<&str> = code.ancestors_and_self().collect();
        assert_eq!(all, ["assets", "assets:bank", "assets:bank:checking"]);
    }

    #[test]
    fn currency_codes_and_scales_are_bounded() {
        assert!(CurrencyCode::parse("USD").is_ok());
        assert!(CurrencyCode::parse("USDC2").is_ok());
        assert!(CurrencyCode::parse("usd").is_err());
        assert!(CurrencyCode::parse("1USD").is_err());
        assert!(CurrencyCode::parse("").is_err());
        let usd = CurrencyCode::parse("USD").expect("valid");
        assert!(Currency::new(usd.clone(), 18).is_ok());
        assert_eq!(
            Currency::new(usd, 19),
            Err(ParseError::CurrencyScale { scale: 19 })
        );
    }

    #[test]
    fn normal_sides_follow_the_accounting_equation() {
        assert_eq!(AccountType::Asset.normal_side(), Side::Debit);
        assert_eq!(AccountType::Expense.normal_side(), Side::Debit);
        assert_eq!(AccountType::Liability.normal_side(), Side::Credit);
        assert_eq!(AccountType::Equity.normal_side(), Side::Credit);
        assert_eq!(AccountType::Revenue.normal_side(), Side::Credit);
    }

    #[test]
    fn a_floor_above_the_ceiling_is_rejected() {
        assert_eq!(Limits::new(Some(10), Some(5)), Err(ParseError::Limits));
        assert!(Limits::new(Some(0), None).is_ok());
    }
}
