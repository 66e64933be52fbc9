//! `QueryError`: every way a query fails, mapped to an HTTP status and a problem `type` in one place.
//!
//! | status | type | when |
//! | --- | --- | --- |
//! | 400 | `invalid-parameter` | a query parameter or header that does not parse or is out of range (`field` names it) |
//! | 404 | `ledger-not-found`, `unknown-account`, `transfer-not-found` | the resource named by the URL does not exist (yet) |
//! | 406 | `not-acceptable` | an `Accept` header this resource has no representation for |
//! | 409 | `version-beyond-head` | `Tally-Min-Version` or `known_at` names a version the ledger has not reached |
//! | 503 | `not-yet-projected` | `Tally-Min-Version` was not reached within the wait (with `Retry-After`) |
//! | 503 | `unavailable` | PostgreSQL did not answer |
//! | 500 | `internal` | anything else: opaque body, cause in the log |

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tally_domain::report::ReportOverflow;
use tally_server::Problem;

/// Seconds a client waits before asking again for a version the read model has not reached: projection
/// runs milliseconds behind the writer when healthy, so one second is plenty without inviting a storm.
pub const RETRY_AFTER_SECS: u32 = 1;

pub mod types {
    pub const INVALID_PARAMETER: &str = "invalid-parameter";
    pub const LEDGER_NOT_FOUND: &str = "ledger-not-found";
    pub const UNKNOWN_ACCOUNT: &str = "unknown-account";
    pub const TRANSFER_NOT_FOUND: &str = "transfer-not-found";
    pub const NOT_ACCEPTABLE: &str = "not-acceptable";
    pub const VERSION_BEYOND_HEAD: &str = "version-beyond-head";
    pub const NOT_YET_PROJECTED: &str = "not-yet-projected";
    pub const UNAVAILABLE: &str = "unavailable";
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid {field}: {reason}")]
    InvalidParameter { field: String, reason: String },
    #[error("no ledger {0}")]
    LedgerNotFound(String),
    #[error("no account {0}")]
    AccountNotFound(String),
    #[error("no transfer {0}")]
    TransferNotFound(String),
    #[error("no representation for Accept: {0}")]
    NotAcceptable(String),
    /// No command has taken the ledger that far, so no wait would reach it: the client's mistake.
    #[error("{field}: the ledger has only reached version {head}, {wanted} was asked for")]
    VersionBeyondHead {
        field: &'static str,
        wanted: i64,
        head: i64,
    },
    #[error("the read model of {ledger} is at version {projected}, {wanted} was asked for")]
    NotYetProjected {
        ledger: String,
        wanted: i64,
        projected: i64,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("read model: {0}")]
    Corrupt(String),
    #[error("event store: {0}")]
    Store(#[from] tally_eventstore::StoreError),
}

impl QueryError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<serde_json::Error> for QueryError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(format!("serialising an answer: {error}"))
    }
}

impl From<ReportOverflow> for QueryError {
    fn from(error: ReportOverflow) -> Self {
        Self::Corrupt(error.to_string())
    }
}

impl From<QueryError> for Problem {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::InvalidParameter { field, reason } => Problem::new(
                types::INVALID_PARAMETER,
                StatusCode::BAD_REQUEST,
                "Invalid query parameter",
            )
            .detail(format!("{field}: {reason}"))
            .extension("field", field),
            QueryError::LedgerNotFound(ledger) => Problem::new(
                types::LEDGER_NOT_FOUND,
                StatusCode::NOT_FOUND,
                "Ledger not found",
            )
            .detail(format!("No ledger '{ledger}' exists (or it is not projected yet).")),
            QueryError::AccountNotFound(code) => Problem::new(
                types::UNKNOWN_ACCOUNT,
                StatusCode::NOT_FOUND,
                "Unknown account",
            )
            .detail(format!("No account '{code}' exists in this ledger.")),
            QueryError::TransferNotFound(id) => Problem::new(
                types::TRANSFER_NOT_FOUND,
                StatusCode::NOT_FOUND,
                "Transfer not found",
            )
            .detail(format!("No transfer '{id}' exists in this ledger.")),
            QueryError::NotAcceptable(accept) => Problem::new(
                types::NOT_ACCEPTABLE,
                StatusCode::NOT_ACCEPTABLE,
                "Not acceptable",
            )
            .detail(format!(
                "This resource is served as application/json, text/csv or application/x-ndjson, not '{accept}'."
            )),
            QueryError::VersionBeyondHead { field, wanted, head } => Problem::new(
                types::VERSION_BEYOND_HEAD,
                StatusCode::CONFLICT,
                "Version beyond the ledger's head",
            )
            .detail(format!(
                "{field}: the ledger has only reached version {head}; {wanted} was asked for"
            ))
            .extension("field", field)
            .extension("head", head),
            QueryError::NotYetProjected { .. } => Problem::new(
                types::NOT_YET_PROJECTED,
                StatusCode::SERVICE_UNAVAILABLE,
                "Not yet projected",
            )
            .cause(error_text(&error)),
            QueryError::Database(ref cause) if is_unavailable(cause) => Problem::new(
                types::UNAVAILABLE,
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
            )
            .cause(error_text(&error)),
            QueryError::Database(_) | QueryError::Corrupt(_) | QueryError::Store(_) => {
                Problem::internal(error_text(&error))
            }
        }
    }
}

fn error_text(error: &QueryError) -> String {
    error.to_string()
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let retry = matches!(
            self,
            QueryError::NotYetProjected { .. }
                | QueryError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
        );
        let mut response = Problem::from(self).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
