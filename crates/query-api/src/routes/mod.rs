//! The query endpoints, one module per resource. Handlers parse and check their parameters, then go
//! through [`QueryState::cached`] (JSON) or [`crate::export`] (CSV/NDJSON).

pub mod accounts;
pub mod audit;
pub mod ledgers;
pub mod live;
pub mod reports;
pub mod transfers;

use axum::Router;
use chrono::{DateTime, TimeDelta, Utc};
use tally_domain::{AccountCode, LedgerId};

use crate::cache::Freshness;
use crate::error::QueryError;
use crate::params::KnownAt;
use crate::read;
use crate::state::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new()
        .merge(ledgers::router())
        .merge(accounts::router())
        .merge(transfers::router())
        .merge(reports::router())
        .merge(live::router())
        .merge(audit::router())
}

/// A ledger id from the path; one that cannot exist is simply not found.
pub fn ledger_id(raw: &str) -> Result<String, QueryError> {
    LedgerId::parse(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|_| QueryError::LedgerNotFound(raw.to_owned()))
}

pub fn account_code(raw: &str) -> Result<String, QueryError> {
    AccountCode::parse(raw)
        .map(|code| code.as_str().to_owned())
        .map_err(|_| QueryError::AccountNotFound(raw.to_owned()))
}

/// The cache key of a request: the ledger and the whole path and query.
pub fn cache_key(ledger: &str, uri: &axum::http::Uri) -> String {
    format!(
        "{ledger}\u{0}{}",
        uri.path_and_query().map_or("", |pq| pq.as_str())
    )
}

/// Recorded times are stamped before the commit: an instant is settled (nothing more can be recorded
/// at or before it) once it is this far in the past.
const SETTLE: TimeDelta = TimeDelta::seconds(60);

/// Resolves `known_at` to a version and waits until the read model holds it.
pub async fn known_version(
    state: &QueryState,
    ledger: &str,
    known_at: Option<KnownAt>,
) -> Result<Option<i64>, QueryError> {
    let Some(known_at) = known_at else {
        return Ok(None);
    };
    let mut conn = state.pool.acquire().await?;
    let version = read::known_version(&mut conn, ledger, known_at).await?;
    drop(conn);
    state.reach(ledger, version).await?;
    Ok(Some(version))
}

/// Whether an answer about business time up to `through` can still change: not when it is what the
/// ledger knew at a fixed version (or a settled instant), nor when `through` lies in a closed period,
/// where no entry may be booked any more.
pub fn freshness(
    known_at: Option<KnownAt>,
    through: Option<DateTime<Utc>>,
    closed_through: Option<DateTime<Utc>>,
) -> Freshness {
    let fixed = match known_at {
        Some(KnownAt::Version(_)) => true,
        Some(KnownAt::Instant(at)) => at < Utc::now() - SETTLE,
        None => false,
    };
    let closed = matches!((through, closed_through), (Some(t), Some(c)) if t <= c);
    if fixed || closed {
        Freshness::Immutable
    } else {
        Freshness::Revalidate
    }
}
