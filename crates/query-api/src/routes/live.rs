//! `GET /v1/ledgers/{ledger}/live`: server-sent events of new and changed transfers and balances.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::QueryError;
use crate::read;
use crate::routes::ledger_id;
use crate::state::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new().route("/v1/ledgers/{ledger}/live", get(live))
}

/// A stream of `hello` (the version the stream starts after), then `transfer` and `balance` events as
/// the read model advances (each with the ledger version as its id), and `reset` when this client fell
/// too far behind and should refetch.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/live", tag = "queries",
    params(tally_server::openapi::LedgerPath),
    responses(
        (status = 200, description = "Server-sent events", content_type = "text/event-stream"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn live(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    let mut conn = state.pool.acquire().await?;
    let head = read::ledger(&mut conn, &state.settings.projection, &ledger).await?;
    drop(conn);
    let clock = state.versions.register(&ledger, head.version);
    let events = state.live.subscribe(&ledger, clock);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
