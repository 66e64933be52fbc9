//! Why a command is refused: one variant per rule, each naming the offending field.

use crate::account::{AccountCode, AccountStatus, CurrencyCode};
use crate::amount::{AmountError, format_minor_units};
use crate::ledger::TransferStatus;
use crate::transfer::TransferId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A value that could not be parsed into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid account code: {reason}")]
    AccountCode { reason: String },
    #[error("currency codes are 1 to 12 characters of A-Z and 0-9, starting with a letter")]
    CurrencyCode,
    #[error("currency scale {scale} is above the maximum of 18")]
    CurrencyScale { scale: u8 },
    #[error("the floor must not be above the ceiling")]
    Limits,
    #[error("invalid metadata: {reason}")]
    Metadata { reason: String },
    #[error(
        "ledger ids are 1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
    )]
    LedgerId,
    #[error("reason codes are 1 to 64 characters of a-z, 0-9, '_' and '-'")]
    ReasonCode,
}

/// Which limit a balance would cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    Floor,
    Ceiling,
}

/// A command the ledger refuses. Each variant is one rule; `field` is a JSON path into the command
/// (`legs[1].amount`) so clients can point at what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: ParseError },
    #[error("{field}: amount {reason}")]
    InvalidAmount { field: String, reason: AmountError },
    #[error("the ledger does not exist yet")]
    LedgerNotFound,
    #[error("the ledger already exists")]
    LedgerAlreadyExists,
    #[error("{field}: the ledger name must be 1 to 200 bytes")]
    InvalidLedgerName { field: String },
    #[error("{field}: account {code} already exists")]
    AccountAlreadyExists { field: String, code: AccountCode },
    #[error("{field}: account {code} does not exist")]
    UnknownAccount { field: String, code: AccountCode },
    #[error("{field}: account {code} is frozen")]
    AccountFrozen { field: String, code: AccountCode },
    #[error("{field}: account {code} is closed")]
    AccountClosed { field: String, code: AccountCode },
    #[error("{field}: account {code} is {status}, which does not allow this")]
    InvalidAccountStatus {
        field: String,
        code: AccountCode,
        status: AccountStatus,
    },
    #[error("{field}: account {code} still has a balance or open reservations")]
    AccountNotEmpty { field: String, code: AccountCode },
    #[error("{field}: currency {currency} already has scale {expected} in this ledger, not {got}")]
    CurrencyScaleMismatch {
        field: String,
        currency: CurrencyCode,
        expected: u8,
        got: u8,
    },
    #[error("{field}: account {account} holds {expected}, not {got}")]
    CurrencyMismatch {
        field: String,
        account: AccountCode,
        expected: CurrencyCode,
        got: CurrencyCode,
    },
    #[error("{field}: a transfer needs at least two legs, got {count}")]
    TooFewLegs { field: String, count: usize },
    #[error("{field}: a transfer has at most {max} legs, got {count}")]
    TooManyLegs {
        field: String,
        count: usize,
        max: usize,
    },
    #[error("{field}: account {account} appears twice on the same side")]
    DuplicateLeg { field: String, account: AccountCode },
    #[error(
        "{field}: debits of {} {currency} do not equal credits of {} {currency}",
        format_minor_units(*.debits, *.scale),
        format_minor_units(*.credits, *.scale)
    )]
    Unbalanced {
        field: String,
        currency: CurrencyCode,
        debits: i128,
        credits: i128,
        /// The currency's scale, when the ledger knows the currency.
        scale: Option<u8>,
    },
    #[error("{field}: the amounts overflow 128-bit arithmetic")]
    AmountOverflow { field: String },
    #[error("{field}: {}", limit_exceeded(.account, *.kind, *.limit, *.balance, *.scale))]
    LimitExceeded {
        field: String,
        account: AccountCode,
        kind: LimitKind,
        /// The limit's value, in minor units.
        limit: i128,
        /// The balance that would cross it; `None` when it would not fit in 128 bits.
        balance: Option<i128>,
        /// The scale of the account's currency, to write the amounts as people do.
        scale: u8,
    },
    #[error("{field}: the current balance of {account} already lies outside these limits")]
    LimitsViolatedByBalance { field: String, account: AccountCode },
    #[error("{field}: at most {max} bytes")]
    TooLong { field: String, max: usize },
    #[error("{field}: transfer {id} exists with a different body")]
    TransferIdConflict { field: String, id: TransferId },
    #[error("{field}: the command uses transfer id {id} twice")]
    TransferIdReused { field: String, id: TransferId },
    #[error("{field}: transfer {id} does not exist")]
    TransferNotFound { field: String, id: TransferId },
    #[error("{field}: transfer {id} is {status}, not pending")]
    TransferNotPending {
        field: String,
        id: TransferId,
        status: TransferStatus,
    },
    #[error("{field}: pending transfer {id} expired at {expired_at}")]
    PendingExpired {
        field: String,
        id: TransferId,
        expired_at: DateTime<Utc>,
    },
    #[error("{field}: pending transfer {id} does not expire before {expires_at}")]
    PendingNotExpired {
        field: String,
        id: TransferId,
        expires_at: DateTime<Utc>,
    },
    #[error(
        "{field}: the timeout must be between 1 second and {} seconds",
        format_minor_units(i128::from(*.max_secs), None)
    )]
    InvalidTimeout { field: String, max_secs: i64 },
    #[error("{field}: expected one amount per leg ({legs}), got {got}")]
    PostAmountsMismatch {
        field: String,
        legs: usize,
        got: usize,
    },
    #[error("{field}: posting more than the pending amount")]
    PostExceedsPending { field: String },
    #[error("{field}: transfer {id} is {status} and cannot be reversed")]
    NotReversible {
        field: String,
        id: TransferId,
        status: TransferStatus,
    },
    #[error("{field}: a rebooked transfer cannot be pending")]
    RebookCannotBePending { field: String },
    #[error("{field}: {effective_at} lies in the period closed through {closed_through}")]
    PeriodClosed {
        field: String,
        effective_at: DateTime<Utc>,
        closed_through: DateTime<Utc>,
    },
    #[error("{field}: the books are already closed through {closed_through}")]
    PeriodAlreadyClosed {
        field: String,
        closed_through: DateTime<Utc>,
    },
    #[error("{field}: a period cannot be closed in the future")]
    PeriodInFuture { field: String },
    #[error("not applied: item {failed_index} of the atomic batch was refused")]
    BatchAborted { failed_index: usize },
}

/// The words of a limit refusal: "would take assets:card to 52.00, above its ceiling of 50.00".
fn limit_exceeded(
    account: &AccountCode,
    kind: LimitKind,
    limit: i128,
    balance: Option<i128>,
    scale: u8,
) -> String {
    let amount = |value| format_minor_units(value, Some(scale));
    let limit = amount(limit);
    match (kind, balance) {
        (LimitKind::Floor, Some(balance)) => format!(
            "would take the available balance of {account} to {}, below its floor of {limit}",
            amount(balance)
        ),
        (LimitKind::Ceiling, Some(balance)) => format!(
            "would take {account} to {}, above its ceiling of {limit}",
            amount(balance)
        ),
        (LimitKind::Floor, None) => format!(
            "would take the available balance of {account} below its floor of {limit}, beyond what 128 bits hold"
        ),
        (LimitKind::Ceiling, None) => {
            format!("would take {account} above its ceiling of {limit}, beyond what 128 bits hold")
        }
    }
}

/// Matches every rule that names a field (binding it to `$f`), and the few that do not; the one place
/// that lists them, so a new rule cannot be forgotten by `field` and `field_mut`.
macro_rules! match_field {
    ($error:expr, $f:ident => $named:expr, _ => $unnamed:expr) => {{
        use DomainError as E;
        match $error {
            E::Invalid { field: $f, .. }
            | E::InvalidAmount { field: $f, .. }
            | E::InvalidLedgerName { field: $f }
            | E::AccountAlreadyExists { field: $f, .. }
            | E::UnknownAccount { field: $f, .. }
            | E::AccountFrozen { field: $f, .. }
            | E::AccountClosed { field: $f, .. }
            | E::InvalidAccountStatus { field: $f, .. }
            | E::AccountNotEmpty { field: $f, .. }
            | E::CurrencyScaleMismatch { field: $f, .. }
            | E::CurrencyMismatch { field: $f, .. }
            | E::TooFewLegs { field: $f, .. }
            | E::TooManyLegs { field: $f, .. }
            | E::DuplicateLeg { field: $f, .. }
            | E::Unbalanced { field: $f, .. }
            | E::AmountOverflow { field: $f }
            | E::LimitExceeded { field: $f, .. }
            | E::LimitsViolatedByBalance { field: $f, .. }
            | E::TooLong { field: $f, .. }
            | E::TransferIdConflict { field: $f, .. }
            | E::TransferIdReused { field: $f, .. }
            | E::TransferNotFound { field: $f, .. }
            | E::TransferNotPending { field: $f, .. }
            | E::PendingExpired { field: $f, .. }
            | E::PendingNotExpired { field: $f, .. }
            | E::InvalidTimeout { field: $f, .. }
            | E::PostAmountsMismatch { field: $f, .. }
            | E::PostExceedsPending { field: $f }
            | E::NotReversible { field: $f, .. }
            | E::RebookCannotBePending { field: $f }
            | E::PeriodClosed { field: $f, .. }
            | E::PeriodAlreadyClosed { field: $f, .. }
            | E::PeriodInFuture { field: $f } => $named,
            E::LedgerNotFound | E::LedgerAlreadyExists | E::BatchAborted { .. } => $unnamed,
        }
    }};
}

impl DomainError {
    /// The JSON path of the offending field, for rules that name one.
    pub fn field(&self) -> Option<&str> {
        match_field!(self, f => Some(f.as_str()), _ => None)
    }

    /// The field, to re-root it when a command is nested in a larger request (`rebook.legs[0]`).
    pub fn field_mut(&mut self) -> Option<&mut String> {
        match_field!(self, f => Some(f), _ => None)
    }

    /// The stable machine-readable code of the rule, used as the problem `type` at the HTTP edge.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid-field",
            Self::InvalidAmount { .. } => "invalid-amount",
            Self::LedgerNotFound => "ledger-not-found",
            Self::LedgerAlreadyExists => "ledger-already-exists",
            Self::InvalidLedgerName { .. } => "invalid-field",
            Self::AccountAlreadyExists { .. } => "account-already-exists",
            Self::UnknownAccount { .. } => "unknown-account",
            Self::AccountFrozen { .. } => "account-frozen",
            Self::AccountClosed { .. } => "account-closed",
            Self::InvalidAccountStatus { .. } => "invalid-account-status",
            Self::AccountNotEmpty { .. } => "account-not-empty",
            Self::CurrencyScaleMismatch { .. } => "currency-scale-mismatch",
            Self::CurrencyMismatch { .. } => "currency-mismatch",
            Self::TooFewLegs { .. } => "too-few-legs",
            Self::TooManyLegs { .. } => "too-many-legs",
            Self::DuplicateLeg { .. } => "duplicate-leg",
            Self::Unbalanced { .. } => "unbalanced-transfer",
            Self::AmountOverflow { .. } => "amount-overflow",
            Self::LimitExceeded { .. } => "limit-exceeded",
            Self::LimitsViolatedByBalance { .. } => "limits-violated-by-balance",
            Self::TooLong { .. } => "field-too-long",
            Self::TransferIdConflict { .. } => "transfer-id-conflict",
            Self::TransferIdReused { .. } => "transfer-id-reused",
            Self::TransferNotFound { .. } => "transfer-not-found",
            Self::TransferNotPending { .. } => "transfer-not-pending",
            Self::PendingExpired { .. } => "pending-expired",
            Self::PendingNotExpired { .. } => "pending-not-expired",
            Self::InvalidTimeout { .. } => "invalid-timeout",
            Self::PostAmountsMismatch { .. } => "post-amounts-mismatch",
            Self::PostExceedsPending { .. } => "post-exceeds-pending",
            Self::NotReversible { .. } => "not-reversible",
            Self::RebookCannotBePending { .. } => "rebook-cannot-be-pending",
            Self::PeriodClosed { .. } => "period-closed",
            Self::PeriodAlreadyClosed { .. } => "period-already-closed",
            Self::PeriodInFuture { .. } => "period-in-future",
            Self::BatchAborted { .. } => "batch-aborted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn code(s: &str) -> AccountCode {
        AccountCode::parse(s).expect("a valid code")
    }

    fn currency(s: &str) -> CurrencyCode {
        CurrencyCode::parse(s).expect("a valid currency")
    }

    /// Words only Rust's `Debug` would write: `Some(..)`, `None` and the variant names of enums.
    const DEBUG_WORDS: &[&str] = &[
        "Some(", "None", "Floor", "Ceiling", "Open", "Frozen", "Closed", "Posted", "Pending",
        "Voided", "Expired", "Reversed", "{", "\"",
    ];

    #[test]
    fn refusals_are_written_for_people_not_in_debug_form() {
        let id = TransferId(Uuid::nil());
        let errors = [
            DomainError::LimitExceeded {
                field: "legs[0].amount".into(),
                account: code("assets:card"),
                kind: LimitKind::Ceiling,
                limit: 5_000,
                balance: Some(5_200),
                scale: 0,
            },
            DomainError::LimitExceeded {
                field: "legs[0].amount".into(),
                account: code("assets:card"),
                kind: LimitKind::Floor,
                limit: 0,
                balance: None,
                scale: 2,
            },
            DomainError::Unbalanced {
                field: "legs".into(),
                currency: currency("USD"),
                debits: 123_456,
                credits: 5,
                scale: None,
            },
            DomainError::InvalidAccountStatus {
                field: "code".into(),
                code: code("assets:card"),
                status: AccountStatus::Frozen,
            },
            DomainError::TransferNotPending {
                field: "id".into(),
                id,
                status: TransferStatus::Voided,
            },
            DomainError::NotReversible {
                field: "original".into(),
                id,
                status: TransferStatus::Pending,
            },
            DomainError::InvalidTimeout {
                field: "pending.timeout_secs".into(),
                max_secs: 2_592_000,
            },
        ];
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "legs[0].amount: would take assets:card to 5,200, above its ceiling of 5,000",
                "legs[0].amount: would take the available balance of assets:card below its floor of 0.00, beyond what 128 bits hold",
                "legs: debits of 123,456 USD do not equal credits of 5 USD",
                "code: account assets:card is frozen, which does not allow this",
                "id: transfer 00000000-0000-0000-0000-000000000000 is voided, not pending",
                "original: transfer 00000000-0000-0000-0000-000000000000 is pending and cannot be reversed",
                "pending.timeout_secs: the timeout must be between 1 second and 2,592,000 seconds",
            ]
        );
        for text in &texts {
            for word in DEBUG_WORDS {
                assert!(!text.contains(word), "{word:?} in {text:?}");
            }
        }
    }
}
