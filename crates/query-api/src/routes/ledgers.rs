//! `GET /v1/ledgers` and `GET /v1/ledgers/{ledger}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tally_server::ApiJson;
use utoipa::IntoParams;

use crate::dto::{LedgerList, LedgerView};
use crate::error::QueryError;
use crate::extract::ApiQuery;
use crate::params::{self, Cursor};
use crate::read;
use crate::routes::{current, ledger_id};
use crate::state::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/ledgers", get(list_ledgers))
        .route("/v1/ledgers/{ledger}", get(get_ledger))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::params::cursor_schema)]
    pub cursor: Option<String>,
    /// 1 to 1000, default 100.
    #[param(schema_with = crate::params::limit_schema)]
    pub limit: Option<String>,
}

/// Ledgers in id order.
#[utoipa::path(get, path = "/v1/ledgers", tag = "queries", params(PageParams),
    responses(
        (status = 200, description = "A page of ledgers", body = LedgerList),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_ledgers(
    State(state): State<QueryState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, QueryError> {
    let limit = params::limit(params.limit.as_deref())?;
    let after = params::account_cursor(params.cursor.as_deref())?;
    let items = read::ledgers(
        &state.pool,
        &state.settings.projection,
        after.as_deref(),
        limit,
    )
    .await?;
    let next_cursor = Cursor::after_page(&items, limit, |l| Cursor::Account(l.ledger.clone()));
    Ok(ApiJson(LedgerList { items, next_cursor }).into_response())
}

/// One ledger and the version its read model has reached.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}", tag = "queries",
    params(tally_server::openapi::LedgerPath,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "The ledger", body = LedgerView, headers(("ETag" = String), ("Tally-Version" = i64))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_ledger(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    current(&state, &ledger, &uri, &headers, async |_, head| {
        Ok(head.clone())
    })
    .await
}
