//! `ApiError`: every way a command request fails, mapped to an HTTP status and a problem `type` in one place.
//!
//! Domain refusals keep the domain's stable code (`DomainError::code()`) as their problem `type`, so the UI
//! can switch on it. The status follows one rule:
//!
//! | status | when | codes |
//! | --- | --- | --- |
//! | 404 | the resource named by the URL does not exist | `ledger-not-found`, `transfer-not-found`, `unknown-account` (account in the path) |
//! | 409 | the request is well-formed but conflicts with the ledger's current state; it may succeed against another state | `ledger-already-exists`, `account-already-exists`, `account-frozen`, `account-closed`, `invalid-account-status`, `account-not-empty`, `currency-scale-mismatch`, `limit-exceeded`, `limits-violated-by-balance`, `transfer-id-conflict`, `transfer-not-pending`, `pending-expired`, `pending-not-expired`, `not-reversible`, `period-closed`, `period-already-closed`, `batch-aborted` |
//! | 422 | the request itself is invalid, whatever the state | `invalid-field`, `invalid-amount`, `unknown-account` (account in the body), `currency-mismatch`, `too-few-legs`, `too-many-legs`, `duplicate-leg`, `unbalanced-transfer`, `amount-overflow`, `field-too-long`, `transfer-id-reused`, `invalid-timeout`, `post-amounts-mismatch`, `post-exceeds-pending`, `rebook-cannot-be-pending`, `period-in-future`, `too-many-items`, `empty-update` |
//! | 503 | `overloaded` (with `Retry-After`), `unavailable`: retry with the same transfer id is safe | |
//! | 500 | `internal`: opaque body, cause in the log | |
//!
//! Every problem of a domain rule carries the offending JSON path in a `field` member where the rule names one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tally_domain::DomainError;
use tally_server::Problem;
use tally_writer::WriteError;

/// Seconds a client is told to wait after an `overloaded` answer: a ledger's queue drains in milliseconds,
/// so one second is enough for it to have room again without inviting a thundering herd.
pub const RETRY_AFTER_SECS: u32 = 1;

/// Problem slugs this crate answers with besides the domain codes and the server crate's own.
pub mod types {
    /// 422: a field that is not a domain type failed to parse (e.g. a limit that is not a signed integer).
    pub const INVALID_FIELD: &str = "invalid-field";
    /// 422: a batch holds more items than allowed, or none.
    pub const TOO_MANY_ITEMS: &str = "too-many-items";
    /// 422: a PATCH that asks for no change.
    pub const EMPTY_UPDATE: &str = "empty-update";
    /// 503: the ledger's writer queue is full; retry after `Retry-After` seconds.
    pub const OVERLOADED: &str = "overloaded";
    /// 503: the writer could not complete; the command may or may not have taken effect.
    pub const UNAVAILABLE: &str = "unavailable";
}

/// Why a command request failed.
#[derive(Debug)]
pub enum ApiError {
    /// 404, 409 or 422 as [`domain_status`] says; the type is the rule's `code()`.
    Domain(DomainError),
    /// 422 `invalid-field`: a value outside the domain's types did not parse.
    InvalidField { field: String, reason: String },
    /// 422 `too-many-items` (or none at all) in a batch.
    TooManyItems { max: usize, got: usize },
    /// 422 `empty-update`: a PATCH naming nothing to change.
    EmptyUpdate,
    /// 503 `overloaded` with `Retry-After`.
    Overloaded,
    /// 503 `unavailable`; the cause goes to the log only.
    Unavailable(String),
    /// 500 `internal`; the cause goes to the log only.
    Internal(String),
    /// A problem already built elsewhere (an extractor's rejection), answered as it is.
    Problem(Box<Problem>),
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        Self::Domain(error)
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Overloaded => Self::Overloaded,
            WriteError::Unavailable(cause) => Self::Unavailable(cause),
            WriteError::Store(e) => Self::Internal(e.to_string()),
            WriteError::Corrupt { ledger, reason } => {
                Self::Internal(format!("ledger {ledger} cannot be loaded: {reason}"))
            }
        }
    }
}

impl ApiError {
    /// The problem answered for this error.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Domain(error) => domain_problem(error),
            Self::InvalidField { field, reason } => Problem::new(
                types::INVALID_FIELD,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid field",
            )
            .detail(format!("{field}: {reason}"))
            .extension("field", field.as_str()),
            Self::TooManyItems { max, got } => Problem::new(
                types::TOO_MANY_ITEMS,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Wrong number of batch items",
            )
            .detail(format!("a batch holds 1 to {max} transfers, got {got}"))
            .extension("field", "transfers")
            .extension("max", *max),
            Self::EmptyUpdate => Problem::new(
                types::EMPTY_UPDATE,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Nothing to change",
            )
            .detail("name at least one of status, limits or metadata"),
            Self::Overloaded => Problem::new(
                types::OVERLOADED,
                StatusCode::SERVICE_UNAVAILABLE,
                "Ledger overloaded",
            )
            .cause("the ledger's writer queue is full"),
            Self::Unavailable(cause) => Problem::new(
                types::UNAVAILABLE,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
            )
            .cause(cause),
            Self::Internal(cause) => Problem::internal(cause),
            Self::Problem(problem) => (**problem).clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let overloaded = matches!(self, Self::Overloaded);
        let mut response = self.to_problem().into_response();
        if overloaded {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// The problem of a domain refusal: its status, its stable type, the rule's message and the field.
pub fn domain_problem(error: &DomainError) -> Problem {
    let (status, title) = domain_status(error);
    let mut problem = Problem::new(error.code(), status, title).detail(error.to_string());
    if let Some(field) = error.field() {
        problem = problem.extension("field", field);
    }
    if let DomainError::BatchAborted { failed_index } = error {
        problem = problem.extension("failed_index", *failed_index);
    }
    problem
}

/// The one table of domain rules to statuses (see the module documentation for the reasoning). The match
/// is exhaustive, so a new rule does not compile until it is classified here.
pub fn domain_status(error: &DomainError) -> (StatusCode, &'static str) {
    use DomainError as E;
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    const CONFLICT: StatusCode = StatusCode::CONFLICT;
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    match error {
        E::Invalid { .. } => (INVALID, "Invalid field"),
        E::InvalidAmount { .. } => (INVALID, "Invalid amount"),
        E::LedgerNotFound => (NOT_FOUND, "Ledger not found"),
        E::LedgerAlreadyExists => (CONFLICT, "Ledger already exists"),
        E::InvalidLedgerName { .. } => (INVALID, "Invalid field"),
        E::AccountAlreadyExists { .. } => (CONFLICT, "Account already exists"),
        // An account named by the URL path is a missing resource; one named in the body is bad input.
        E::UnknownAccount { field, .. } if field == "code" => (NOT_FOUND, "Unknown account"),
        E::UnknownAccount { .. } => (INVALID, "Unknown account"),
        E::AccountFrozen { .. } => (CONFLICT, "Account frozen"),
        E::AccountClosed { .. } => (CONFLICT, "Account closed"),
        E::InvalidAccountStatus { .. } => (CONFLICT, "Invalid account status"),
        E::AccountNotEmpty { .. } => (CONFLICT, "Account not empty"),
        E::CurrencyScaleMismatch { .. } => (CONFLICT, "Currency scale mismatch"),
        E::CurrencyMismatch { .. } => (INVALID, "Currency mismatch"),
        E::TooFewLegs { .. } => (INVALID, "Too few legs"),
        E::TooManyLegs { .. } => (INVALID, "Too many legs"),
        E::DuplicateLeg { .. } => (INVALID, "Duplicate leg"),
        E::Unbalanced { .. } => (INVALID, "Unbalanced transfer"),
        E::AmountOverflow { .. } => (INVALID, "Amount overflow"),
        E::LimitExceeded { .. } => (CONFLICT, "Limit exceeded"),
        E::LimitsViolatedByBalance { .. } => (CONFLICT, "Limits violated by balance"),
        E::TooLong { .. } => (INVALID, "Field too long"),
        E::TransferIdConflict { .. } => (CONFLICT, "Transfer id conflict"),
        E::TransferIdReused { .. } => (INVALID, "Transfer id reused"),
        E::TransferNotFound { .. } => (NOT_FOUND, "Transfer not found"),
        E::TransferNotPending { .. } => (CONFLICT, "Transfer not pending"),
        E::PendingExpired { .. } => (CONFLICT, "Pending transfer expired"),
        E::PendingNotExpired { .. } => (CONFLICT, "Pending transfer not expired"),
        E::InvalidTimeout { .. } => (INVALID, "Invalid timeout"),
        E::PostAmountsMismatch { .. } => (INVALID, "Post amounts mismatch"),
        E::PostExceedsPending { .. } => (INVALID, "Post exceeds pending"),
        E::NotReversible { .. } => (CONFLICT, "Transfer not reversible"),
        E::RebookCannotBePending { .. } => (INVALID, "Rebook cannot be pending"),
        E::PeriodClosed { .. } => (CONFLICT, "Period closed"),
        E::PeriodAlreadyClosed { .. } => (CONFLICT, "Period already closed"),
        E::PeriodInFuture { .. } => (INVALID, "Period in the future"),
        E::BatchAborted { .. } => (CONFLICT, "Batch aborted"),
    }
}

/// Renames the field a rule names, for endpoints whose body spells a command's field differently.
pub fn rename_field(
    mut error: DomainError,
    rename: impl Fn(&str) -> Option<String>,
) -> DomainError {
    if let Some(field) = error.field_mut()
        && let Some(renamed) = rename(field)
    {
        *field = renamed;
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_domain::{AccountCode, TransferId};

    fn code(s: &str) -> AccountCode {
        AccountCode::parse(s).expect("a valid code")
    }

    #[test]
    fn an_account_in_the_path_is_not_found_and_one_in_the_body_is_invalid() {
        let in_path = DomainError::UnknownAccount {
            field: "code".into(),
            code: code("a"),
        };
        let in_body = DomainError::UnknownAccount {
            field: "legs[0].account".into(),
            code: code("a"),
        };
        assert_eq!(domain_status(&in_path).0, StatusCode::NOT_FOUND);
        assert_eq!(domain_status(&in_body).0, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_domain_problem_carries_the_code_and_the_field() {
        let error = DomainError::TransferIdConflict {
            field: "id".into(),
            id: TransferId(uuid::Uuid::nil()),
        };
        let body = domain_problem(&error).body();
        assert_eq!(
            body.type_,
            "https://tally.dev/problems/transfer-id-conflict"
        );
        assert_eq!(body.status, 409);
        assert_eq!(body.extensions["field"], "id");
    }

    #[test]
    fn a_limit_refusal_is_detailed_in_words() {
        let error = DomainError::LimitExceeded {
            field: "legs[0].amount".into(),
            account: code("assets:card"),
            kind: tally_domain::LimitKind::Ceiling,
            limit: 500_000,
            balance: Some(520_000),
            scale: 2,
        };
        let body = domain_problem(&error).body();
        let detail = body.detail.expect("a detail");
        assert_eq!(
            detail,
            "legs[0].amount: would take assets:card to 5,200.00, above its ceiling of 5,000.00"
        );
        assert!(!detail.contains("Some("), "{detail}");
        assert!(!detail.contains("Ceiling"), "{detail}");
    }

    #[test]
    fn fields_can_be_renamed() {
        let error = DomainError::TransferNotFound {
            field: "original".into(),
            id: TransferId(uuid::Uuid::nil()),
        };
        let renamed = rename_field(error, |f| (f == "original").then(|| "id".to_owned()));
        assert_eq!(renamed.field(), Some("id"));
    }

    #[test]
    fn overload_is_503_with_retry_after() {
        let response = ApiError::Overloaded.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECS))
        );
    }
}
