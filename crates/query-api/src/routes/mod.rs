//! The query endpoints, one module per resource. Handlers parse and check their parameters, then go
//! through [`QueryState::cached`] (JSON) or [`crate::export`] (CSV/NDJSON).

pub mod accounts;
pub mod audit;
pub mod ledgers;
pub mod live;
pub mod reports;
pub mod transfers;

use axum::Router;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use tally_domain::{AccountCode, LedgerId};

use crate::cache::{Answer, Freshness};
use crate::dto::LedgerView;
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
pub fn cache_key(ledger: &str, uri: &Uri) -> String {
    format!(
        "{ledger}\u{0}{}",
        uri.path_and_query().map_or("", |pq| pq.as_str())
    )
}

/// Answers a cacheable JSON read of `ledger` as it is now, revalidated on every request:
/// `fetch` runs in one snapshot after the ledger's head, whose version the answer carries.
pub async fn current<T, R>(
    state: &QueryState,
    ledger: &str,
    uri: &Uri,
    headers: &HeaderMap,
    fetch: R,
) -> Result<Response, QueryError>
where
    T: Serialize,
    R: AsyncFnOnce(&mut PgConnection, &LedgerView) -> Result<T, QueryError>,
{
    state
        .cached(ledger, cache_key(ledger, uri), headers, || async {
            let mut tx = read::snapshot(&state.pool).await?;
            let head = read::ledger(&mut tx, &state.settings.projection, ledger).await?;
            let body = fetch(&mut tx, &head).await?;
            tx.commit().await?;
            Ok(Answer::json(head.version, &body, Freshness::Revalidate)?)
        })
        .await
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
