//! The command endpoints, one module per resource, and what every command answer shares: the
//! consistency token in the body and in `Tally-Version`.

pub mod accounts;
pub mod ledgers;
pub mod transfers;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tally_domain::{DomainError, LedgerId};
use tally_eventstore::EventMetadata;
use tally_writer::{Accepted, Submission};

use crate::error::ApiError;
use crate::state::AppState;

/// The ledger version a command answer reflects; a query sent with `Tally-Min-Version` waits for it.
pub static VERSION_HEADER: HeaderName = HeaderName::from_static("tally-version");
/// Set on an answer that repeats the original outcome of an idempotent retry.
pub static REPLAY_HEADER: HeaderName = HeaderName::from_static("tally-idempotent-replay");

/// A JSON command answer with the `Tally-Version` header (and `Location` when given).
pub(crate) fn answer<T: Serialize>(
    status: StatusCode,
    version: u64,
    body: &T,
    location: Option<String>,
) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(VERSION_HEADER.clone(), HeaderValue::from(version));
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// Submits one command and answers its acceptance, or the rule that refused it.
pub(crate) async fn submit(
    state: &AppState,
    ledger: &LedgerId,
    kind: tally_domain::CommandKind,
    metadata: EventMetadata,
) -> Result<Accepted, ApiError> {
    let result = state
        .writers
        .submit(ledger, Submission { kind, metadata })
        .await?;
    Ok(result?)
}

/// Submits commands that take effect together or not at all; answers the last acceptance, or the rule
/// that refused the batch (never the "aborted because of another item" of the others).
pub(crate) async fn submit_atomic(
    state: &AppState,
    ledger: &LedgerId,
    items: Vec<Submission>,
) -> Result<Accepted, ApiError> {
    let results = state.writers.submit_batch(ledger, items, true).await?;
    let mut last = None;
    let mut aborted = None;
    for result in results {
        match result {
            Ok(accepted) => last = Some(accepted),
            Err(error @ DomainError::BatchAborted { .. }) => aborted = Some(error),
            Err(error) => return Err(error.into()),
        }
    }
    match (last, aborted) {
        (_, Some(error)) => Err(error.into()),
        (Some(accepted), None) => Ok(accepted),
        (None, None) => Err(ApiError::Internal("the writer answered no result".into())),
    }
}
