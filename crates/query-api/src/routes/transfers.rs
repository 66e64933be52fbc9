//! `GET /v1/ledgers/{ledger}/transfers/{id}` and the filtered listing, newest first.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::dto::{TransferList, TransferView};
use crate::error::QueryError;
use crate::extract::ApiQuery;
use crate::params::{self, Cursor};
use crate::read::{self, TransferFilter};
use crate::routes::{account_code, current, ledger_id};
use crate::state::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/ledgers/{ledger}/transfers", get(list_transfers))
        .route("/v1/ledgers/{ledger}/transfers/{id}", get(get_transfer))
}

const STATUSES: [&str; 5] = ["posted", "pending", "voided", "expired", "reversed"];

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransferListParams {
    #[param(schema_with = crate::params::cursor_schema)]
    pub cursor: Option<String>,
    /// 1 to 1000, default 100.
    #[param(schema_with = crate::params::limit_schema)]
    pub limit: Option<String>,
    /// `posted`, `pending`, `voided`, `expired` or `reversed`.
    #[param(schema_with = crate::params::transfer_status_schema)]
    pub status: Option<String>,
    /// Only transfers with a leg on this account.
    #[param(schema_with = crate::params::code_schema)]
    pub account: Option<String>,
    /// Effective at or after (a date means its start).
    #[param(schema_with = crate::params::instant_schema)]
    pub from: Option<String>,
    /// Effective at or before (a date means its end).
    #[param(schema_with = crate::params::instant_schema)]
    pub to: Option<String>,
}

/// Transfers, newest first, with filters.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/transfers", tag = "queries",
    params(tally_server::openapi::LedgerPath, TransferListParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "A page of transfers", body = TransferList, headers(("ETag" = String), ("Tally-Version" = i64))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_transfers(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    ApiQuery(params): ApiQuery<TransferListParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    let before = params::transfer_cursor(params.cursor.as_deref())?;
    let limit = params::limit(params.limit.as_deref())?;
    if let Some(status) = params.status.as_deref()
        && !STATUSES.contains(&status)
    {
        return Err(QueryError::invalid(
            "status",
            "expected posted, pending, voided, expired or reversed",
        ));
    }
    let account = params
        .account
        .as_deref()
        .map(|raw| {
            account_code(raw).map_err(|_| QueryError::invalid("account", "not an account code"))
        })
        .transpose()?;
    let filter = TransferFilter {
        status: params.status.clone(),
        account,
        from: params::optional_start("from", params.from.as_deref())?,
        to: params::optional_end("to", params.to.as_deref())?,
    };
    current(&state, &ledger, &uri, &headers, async |tx, head| {
        let items = read::transfers(tx, &ledger, &filter, before, limit).await?;
        Ok(TransferList {
            ledger: ledger.clone(),
            version: head.version,
            next_cursor: Cursor::after_page(&items, limit, |t| Cursor::Transfer(t.created_version)),
            items,
        })
    })
    .await
}

/// One transfer and its lifecycle.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/transfers/{id}", tag = "queries",
    params(tally_server::openapi::TransferPath,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "The transfer", body = TransferView, headers(("ETag" = String), ("Tally-Version" = i64))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 404, description = "`ledger-not-found`, `transfer-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_transfer(
    State(state): State<QueryState>,
    Path((ledger, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    let id = Uuid::parse_str(&id).map_err(|_| QueryError::TransferNotFound(id.clone()))?;
    current(&state, &ledger, &uri, &headers, async |tx, _| {
        read::transfer(tx, &ledger, id).await
    })
    .await
}
