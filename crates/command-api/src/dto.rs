//! The JSON the command API takes and gives, and the parsing of requests into domain commands.
//!
//! Requests refuse unknown fields. Amounts and limits are decimal strings (never JSON numbers, which lose
//! precision in JavaScript and invite floats); they are parsed here, after the shape is known, so a bad
//! value answers a problem naming its JSON path (`legs[0].amount`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tally_domain::limits;
use tally_domain::{
    AccountBalance, AccountCode, AccountStatus, AccountType, Amount, Currency, CurrencyCode,
    DomainError, LedgerId, LegSpec, Limits, Metadata, PendingSpec, PostPending, ReasonCode,
    ReversalSpec, Side, TransferId, TransferOutcome, TransferSpec, TransferStatus,
};
use utoipa::ToSchema;
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use uuid::Uuid;

use crate::error::ApiError;

/// The most transfers one batch request may carry: with a few hundred bytes each this stays well inside
/// the 16 MiB body limit, and the writer decides them within one or a few group commits.
pub const MAX_BATCH_ITEMS: usize = 10_000;

// ---------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------

/// Creates a ledger.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "main", "name": "Main books"}))]
pub struct CreateLedger {
    /// Client-chosen id: 1 to 64 characters of `a-z 0-9 _ -`, starting with a letter or digit.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub id: String,
    /// Display name, 1 to 200 bytes.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// Opens an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "assets:bank:checking", "type": "asset", "currency": "USD", "scale": 2, "limits": {"floor": "0"}}))]
pub struct OpenAccount {
    /// Hierarchical code, unique in the ledger, e.g. `assets:bank:checking`.
    #[schema(pattern = "^[a-z0-9_-]+(:[a-z0-9_-]+){0,9}$", max_length = 128)]
    pub code: String,
    /// The account type, which fixes its normal side.
    #[serde(rename = "type")]
    pub account_type: AccountTypeDto,
    /// Asset code, e.g. `USD`.
    #[schema(pattern = "^[A-Z][A-Z0-9]{0,11}$")]
    pub currency: String,
    /// Decimal places of the currency's minor unit (0 to 18); must match the ledger's earlier use.
    #[schema(minimum = 0, maximum = 18)]
    pub scale: u8,
    #[serde(default)]
    pub limits: Option<LimitsDto>,
    /// Up to 32 string entries.
    #[serde(default)]
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Changes an account; every named change applies together or none does. Name at least one; `null` is
/// refused (it would read as "remove", which no change means).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "frozen"}), min_properties = 1)]
pub struct UpdateAccount {
    /// `frozen` freezes, `open` unfreezes, `closed` closes (needs a zero balance).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = AccountStatusDto)]
    pub status: Option<AccountStatusDto>,
    /// Replaces the limits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = LimitsDto)]
    pub limits: Option<LimitsDto>,
    /// Replaces the metadata.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = present_metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Balance bounds on the account's normal side, as signed decimal strings of minor units.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsDto {
    /// The available balance may not go below this (e.g. `"0"`).
    #[serde(default)]
    #[schema(pattern = "^(0|-?[1-9][0-9]{0,37})$")]
    pub floor: Option<String>,
    /// The balance including pending inflows may not go above this.
    #[serde(default)]
    #[schema(pattern = "^(0|-?[1-9][0-9]{0,37})$")]
    pub ceiling: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountTypeDto {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatusDto {
    Open,
    Frozen,
    Closed,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SideDto {
    Debit,
    Credit,
}

/// A transfer (journal entry). Its `id` is the idempotency key: the same body again answers the original
/// outcome, another body under the same id answers 409 `transfer-id-conflict`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": "0190a5c4-5d9e-7b6c-8f00-000000000001",
    "legs": [
        {"account": "assets:bank:checking", "side": "debit", "amount": "1000", "currency": "USD"},
        {"account": "equity:capital", "side": "credit", "amount": "1000", "currency": "USD"}
    ],
    "description": "initial capital"
}))]
pub struct NewTransfer {
    pub id: Uuid,
    /// Two or more legs, balanced per currency.
    #[schema(min_items = 2, max_items = 128)]
    pub legs: Vec<Leg>,
    /// Business time; defaults to the time the ledger records the transfer.
    #[serde(default)]
    pub effective_at: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Reserve instead of posting: the amounts are held until posted, voided or expired.
    #[serde(default)]
    pub pending: Option<PendingDto>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Leg {
    #[schema(pattern = "^[a-z0-9_-]+(:[a-z0-9_-]+){0,9}$", max_length = 128)]
    pub account: String,
    pub side: SideDto,
    /// Positive whole number of minor units as a decimal string, e.g. `"1050"` for 10.50 USD.
    #[schema(pattern = "^[1-9][0-9]{0,37}$")]
    pub amount: String,
    /// Must be the account's currency.
    #[schema(pattern = "^[A-Z][A-Z0-9]{0,11}$")]
    pub currency: String,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingDto {
    /// Seconds until the reservation lapses (1 to 30 days).
    #[schema(minimum = 1, maximum = 2592000)]
    pub timeout_secs: i64,
}

/// Many transfers in one request, each accepted or rejected on its own, or all-or-nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBatch {
    /// All transfers take effect, or none does.
    #[serde(default)]
    pub atomic: bool,
    /// 1 to 10,000 transfers. Each is parsed on its own, so one malformed item is rejected alone.
    // Kept as each item's JSON text and parsed straight into a transfer later, so that a large batch
    // builds no tree of values (a string per key, a map per object) for each item.
    #[schema(value_type = Vec<NewTransfer>, min_items = 1, max_items = 10000)]
    pub transfers: Vec<Box<serde_json::value::RawValue>>,
}

/// Settles a pending transfer in full (no `amounts`) or in part (one amount per leg).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostPendingRequest {
    #[serde(default)]
    #[schema(schema_with = amounts_schema)]
    pub amounts: Option<Vec<String>>,
    #[serde(default)]
    pub effective_at: Option<DateTime<Utc>>,
}

/// Reverses a posted transfer, optionally booking its corrected version atomically.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseRequest {
    /// The id of the new, mirroring transfer (the idempotency key of the reversal).
    pub reversal_id: Uuid,
    /// Why: 1 to 64 characters of `a-z 0-9 _ -`, e.g. `wrong_amount`.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub reason: String,
    #[serde(default)]
    pub effective_at: Option<DateTime<Utc>>,
    /// The corrected transfer, booked together with the reversal.
    #[serde(default)]
    pub rebook: Option<NewTransfer>,
}

/// Locks business time up to and including `through`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosePeriodRequest {
    pub through: DateTime<Utc>,
}

/// A member that may be left out but, when given, is not `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "may not be null; leave the member out to keep it unchanged",
        )),
    }
}

fn metadata_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(limits::MAX_METADATA_ENTRIES))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!(
                    "^[A-Za-z0-9_.-]{{1,{}}}$",
                    limits::MAX_METADATA_KEY_BYTES
                ))),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(limits::MAX_METADATA_VALUE_BYTES)),
        ))
        .description(Some(format!(
            "Up to {} entries; keys of A-Z, a-z, 0-9, `_`, `.`, `-`; values up to {} bytes",
            limits::MAX_METADATA_ENTRIES,
            limits::MAX_METADATA_VALUE_BYTES
        )))
}

/// Metadata in a creating request, where `null` means none.
fn metadata_schema() -> Schema {
    metadata_object()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .build()
        .into()
}

/// Metadata in a PATCH, where it replaces the account's and `null` is refused.
fn present_metadata_schema() -> Schema {
    metadata_object().build().into()
}

/// Partial amounts of a post: one positive decimal string of minor units per leg.
fn amounts_schema() -> Schema {
    Schema::Array(
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[1-9][0-9]{0,37}$")),
            )
            .max_items(Some(tally_domain::limits::MAX_LEGS))
            .build(),
    )
}

// ---------------------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------------------

/// A created ledger, with the consistency token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerCreated {
    pub ledger: String,
    /// The ledger's version after this command; pass it as `Tally-Min-Version` to read your write.
    pub version: u64,
    pub name: String,
}

/// An opened or changed account, with the consistency token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountAnswer {
    pub ledger: String,
    pub version: u64,
    pub code: String,
}

/// One account's balances after a command, as decimal strings of minor units on its normal side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    pub account: String,
    pub currency: String,
    pub posted: String,
    pub pending: String,
    /// Posted minus pending outflows.
    pub available: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatusDto {
    Posted,
    Pending,
    Voided,
    Expired,
    Reversed,
}

/// A transfer's status and the balances of the accounts it touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Outcome {
    pub transfer_id: Uuid,
    pub status: TransferStatusDto,
    pub balances: Vec<Balance>,
}

/// The answer to a transfer command: the transfer's outcome and the consistency token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferAnswer {
    pub transfer_id: Uuid,
    pub status: TransferStatusDto,
    pub balances: Vec<Balance>,
    pub ledger: String,
    pub version: u64,
    /// For reverse-and-rebook: the corrected transfer booked with the reversal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebook: Option<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Accepted,
    Rejected,
}

/// One batch item's result: accepted with its outcome, or rejected with a problem.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// Position of the item in `transfers`.
    pub index: usize,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Outcome>,
    /// The item repeated an accepted transfer and answered its original outcome.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
    /// Why the item was rejected; fields are relative to the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<tally_server::ProblemBody>)]
    pub problem: Option<serde_json::Value>,
}

/// The answer to a batch: per-item results and the consistency token covering every accepted item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAnswer {
    pub ledger: String,
    pub version: u64,
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

/// A closed period, with the consistency token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeriodClosed {
    pub ledger: String,
    pub version: u64,
    pub closed_through: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------------------
// Parsing into domain types
// ---------------------------------------------------------------------------------------------------------

fn invalid(field: impl Into<String>, reason: tally_domain::ParseError) -> ApiError {
    ApiError::Domain(DomainError::Invalid {
        field: field.into(),
        reason,
    })
}

/// Parses a ledger id from the body (`field`); a malformed one is invalid input.
pub fn ledger_id(raw: &str, field: &str) -> Result<LedgerId, ApiError> {
    LedgerId::parse(raw).map_err(|reason| invalid(field, reason))
}

/// Parses a ledger id from the URL path: a malformed one cannot name an existing ledger.
pub fn path_ledger(raw: &str) -> Result<LedgerId, ApiError> {
    LedgerId::parse(raw).map_err(|_| ApiError::Domain(DomainError::LedgerNotFound))
}

pub fn account_code(raw: &str, field: &str) -> Result<AccountCode, ApiError> {
    AccountCode::parse(raw).map_err(|reason| invalid(field, reason))
}

pub fn amount(raw: &str, field: &str) -> Result<Amount, ApiError> {
    Amount::parse(raw).map_err(|reason| {
        ApiError::Domain(DomainError::InvalidAmount {
            field: field.to_owned(),
            reason,
        })
    })
}

pub fn metadata(raw: Option<BTreeMap<String, String>>, field: &str) -> Result<Metadata, ApiError> {
    Metadata::parse(raw.unwrap_or_default()).map_err(|reason| invalid(field, reason))
}

/// A signed whole number of minor units in canonical decimal form (`"0"`, `"-500"`, never `"007"`).
fn signed(raw: &str, field: &str) -> Result<i128, ApiError> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && raw != "-0";
    let error = |reason: &str| ApiError::InvalidField {
        field: field.to_owned(),
        reason: reason.to_owned(),
    };
    if !canonical {
        return Err(error(
            "must be a whole number of minor units written as a decimal string",
        ));
    }
    raw.parse()
        .map_err(|_| error("is too large for a 128-bit amount"))
}

impl LimitsDto {
    pub fn parse(&self, field: &str) -> Result<Limits, ApiError> {
        let floor = self
            .floor
            .as_deref()
            .map(|s| signed(s, &format!("{field}.floor")))
            .transpose()?;
        let ceiling = self
            .ceiling
            .as_deref()
            .map(|s| signed(s, &format!("{field}.ceiling")))
            .transpose()?;
        Limits::new(floor, ceiling).map_err(|reason| invalid(field, reason))
    }
}

impl From<AccountTypeDto> for AccountType {
    fn from(t: AccountTypeDto) -> Self {
        match t {
            AccountTypeDto::Asset => Self::Asset,
            AccountTypeDto::Liability => Self::Liability,
            AccountTypeDto::Equity => Self::Equity,
            AccountTypeDto::Revenue => Self::Revenue,
            AccountTypeDto::Expense => Self::Expense,
        }
    }
}

impl From<AccountStatusDto> for AccountStatus {
    fn from(s: AccountStatusDto) -> Self {
        match s {
            AccountStatusDto::Open => Self::Open,
            AccountStatusDto::Frozen => Self::Frozen,
            AccountStatusDto::Closed => Self::Closed,
        }
    }
}

impl From<SideDto> for Side {
    fn from(s: SideDto) -> Self {
        match s {
            SideDto::Debit => Self::Debit,
            SideDto::Credit => Self::Credit,
        }
    }
}

impl OpenAccount {
    /// The parts of an `OpenAccount` command.
    pub fn parse(self) -> Result<tally_domain::CommandKind, ApiError> {
        let code = account_code(&self.code, "code")?;
        let currency_code =
            CurrencyCode::parse(&self.currency).map_err(|reason| invalid("currency", reason))?;
        let currency =
            Currency::new(currency_code, self.scale).map_err(|reason| invalid("scale", reason))?;
        let limits = self.limits.unwrap_or_default().parse("limits")?;
        Ok(tally_domain::CommandKind::OpenAccount {
            code,
            account_type: self.account_type.into(),
            currency,
            limits,
            metadata: metadata(self.metadata, "metadata")?,
        })
    }
}

impl NewTransfer {
    /// The transfer as the domain takes it; `prefix` is prepended to every field named in an error
    /// (`"rebook."` for a rebooked transfer).
    pub fn parse(self, prefix: &str) -> Result<TransferSpec, ApiError> {
        let legs = self
            .legs
            .into_iter()
            .enumerate()
            .map(|(i, leg)| {
                let at = |name: &str| format!("{prefix}legs[{i}].{name}");
                Ok(LegSpec {
                    account: account_code(&leg.account, &at("account"))?,
                    side: leg.side.into(),
                    amount: amount(&leg.amount, &at("amount"))?,
                    currency: CurrencyCode::parse(&leg.currency)
                        .map_err(|reason| invalid(at("currency"), reason))?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(TransferSpec {
            id: TransferId(self.id),
            legs,
            effective_at: self.effective_at,
            description: self.description.unwrap_or_default(),
            metadata: metadata(self.metadata, &format!("{prefix}metadata"))?,
            pending: self.pending.map(|p| PendingSpec {
                timeout_secs: p.timeout_secs,
            }),
        })
    }
}

impl PostPendingRequest {
    pub fn parse(self, id: Uuid) -> Result<PostPending, ApiError> {
        let amounts = self
            .amounts
            .map(|amounts| {
                amounts
                    .iter()
                    .enumerate()
                    .map(|(i, raw)| amount(raw, &format!("amounts[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(PostPending {
            id: TransferId(id),
            amounts,
            effective_at: self.effective_at,
        })
    }
}

impl ReverseRequest {
    /// The reversal of `original`, and the rebooked transfer if any.
    pub fn parse(self, original: Uuid) -> Result<(ReversalSpec, Option<TransferSpec>), ApiError> {
        let reason = ReasonCode::parse(&self.reason).map_err(|reason| invalid("reason", reason))?;
        let reversal = ReversalSpec {
            id: TransferId(self.reversal_id),
            original: TransferId(original),
            reason,
            effective_at: self.effective_at,
        };
        let rebook = self.rebook.map(|t| t.parse("rebook.")).transpose()?;
        Ok((reversal, rebook))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Domain outcomes into answers
// ---------------------------------------------------------------------------------------------------------

impl From<&AccountBalance> for Balance {
    fn from(b: &AccountBalance) -> Self {
        Self {
            account: b.account.to_string(),
            currency: b.currency.to_string(),
            posted: b.posted.to_string(),
            pending: b.pending.to_string(),
            available: b.available.to_string(),
        }
    }
}

impl From<TransferStatus> for TransferStatusDto {
    fn from(s: TransferStatus) -> Self {
        match s {
            TransferStatus::Posted => Self::Posted,
            TransferStatus::Pending => Self::Pending,
            TransferStatus::Voided => Self::Voided,
            TransferStatus::Expired => Self::Expired,
            TransferStatus::Reversed => Self::Reversed,
        }
    }
}

impl From<&TransferOutcome> for Outcome {
    fn from(o: &TransferOutcome) -> Self {
        Self {
            transfer_id: o.transfer_id.0,
            status: o.status.into(),
            balances: o.balances.iter().map(Balance::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_canonical_signed_integers() {
        assert_eq!(signed("0", "f").ok(), Some(0));
        assert_eq!(signed("-500", "f").ok(), Some(-500));
        for bad in ["", "-", "-0", "007", "1.5", "+1", " 1", "1e3"] {
            assert!(signed(bad, "f").is_err(), "{bad:?}");
        }
        assert!(signed(&"9".repeat(40), "f").is_err());
    }

    #[test]
    fn a_bad_amount_names_its_leg() {
        let transfer = NewTransfer {
            id: Uuid::nil(),
            legs: vec![Leg {
                account: "a".into(),
                side: SideDto::Debit,
                amount: "1.5".into(),
                currency: "USD".into(),
            }],
            effective_at: None,
            description: None,
            metadata: None,
            pending: None,
        };
        match transfer.parse("rebook.") {
            Err(ApiError::Domain(DomainError::InvalidAmount { field, .. })) => {
                assert_eq!(field, "rebook.legs[0].amount");
            }
            other => panic!("expected an invalid amount, got {other:?}"),
        }
    }
}
