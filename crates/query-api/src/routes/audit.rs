//! The audit trail straight from the event store: a ledger's events in order, and verification of its
//! hash chain.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tally_eventstore::{EventStore, MAX_READ_LIMIT, VerifyReport};
use tally_server::ApiJson;
use utoipa::IntoParams;

use crate::dto::{EventPage, EventView, VerifyView};
use crate::error::QueryError;
use crate::extract::ApiQuery;
use crate::params;
use crate::routes::ledger_id;
use crate::state::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/ledgers/{ledger}/events", get(events))
        .route("/v1/ledgers/{ledger}/verify", get(verify))
}

async fn existing(store: &EventStore, ledger: &str) -> Result<(), QueryError> {
    match store.stream_head(ledger).await? {
        Some(_) => Ok(()),
        None => Err(QueryError::LedgerNotFound(ledger.to_owned())),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Events after this ledger version (default 0: from the first).
    #[param(schema_with = crate::params::version_schema)]
    pub after: Option<String>,
    /// 1 to 1000, default 100.
    #[param(schema_with = crate::params::limit_schema)]
    pub limit: Option<String>,
}

/// A ledger's events in version order, with who recorded each, when and why, and its hash.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/events", tag = "audit",
    params(tally_server::openapi::LedgerPath, EventParams),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn events(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    let after = match params.after.as_deref() {
        None => 0,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| QueryError::invalid("after", "expected a ledger version"))?,
    };
    let limit = params::limit(params.limit.as_deref())?.min(MAX_READ_LIMIT);
    existing(&state.store, &ledger).await?;
    let recorded = state.store.read_stream(&ledger, after, limit).await?;
    let next_after = (recorded.len() as i64 == limit)
        .then(|| recorded.last().map(|e| e.version))
        .flatten();
    let events = recorded
        .into_iter()
        .map(|e| EventView {
            position: e.position,
            version: e.version,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            recorded_at: e.recorded_at,
            metadata: serde_json::to_value(&e.metadata).unwrap_or_default(),
            payload: e.payload,
            hash: hex::encode(&e.hash),
            prev_hash: hex::encode(&e.prev_hash),
        })
        .collect();
    Ok(ApiJson(EventPage {
        ledger,
        events,
        next_after,
    })
    .into_response())
}

/// Recomputes the ledger's hash chain and names the first event that does not verify.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/verify", tag = "audit",
    params(tally_server::openapi::LedgerPath),
    responses(
        (status = 200, description = "The verification outcome (intact or not)", body = VerifyView),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    existing(&state.store, &ledger).await?;
    let report = state.store.verify_stream(&ledger).await?;
    let (problem, at_version) = match &report {
        VerifyReport::Intact { .. } => (None, None),
        VerifyReport::TamperedEvent { version } => (Some("tampered-event"), Some(*version)),
        VerifyReport::MissingEvent { expected_version } => {
            (Some("missing-event"), Some(*expected_version))
        }
        VerifyReport::HeadMismatch { last_version, .. } => {
            (Some("head-mismatch"), Some(*last_version))
        }
    };
    let (version, head_hash) = match &report {
        VerifyReport::Intact { version, head_hash } => {
            (Some(*version), Some(hex::encode(head_hash)))
        }
        _ => (None, None),
    };
    Ok(ApiJson(VerifyView {
        ledger,
        intact: report.is_intact(),
        version,
        head_hash,
        problem: problem.map(str::to_owned),
        at_version,
    })
    .into_response())
}
