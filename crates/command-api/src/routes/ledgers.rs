//! `POST /v1/ledgers` and `POST /v1/ledgers/{ledger}/periods/close`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use tally_domain::CommandKind;

use super::{answer, submit};
use crate::context::CommandContext;
use crate::dto::{self, ClosePeriodRequest, CreateLedger, LedgerCreated, PeriodClosed};
use crate::error::ApiError;
use crate::extract::Body;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ledgers", post(create_ledger))
        .route("/v1/ledgers/{ledger}/periods/close", post(close_period))
}

/// Create a ledger.
#[utoipa::path(
    post,
    path = "/v1/ledgers",
    tag = "ledgers",
    request_body = CreateLedger,
    responses(
        (status = 201, description = "Created; `Tally-Version` carries the version", body = LedgerCreated),
        (status = 409, description = "`ledger-already-exists`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-field`, `invalid-body`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_ledger(
    State(state): State<AppState>,
    CommandContext(metadata): CommandContext,
    Body(body): Body<CreateLedger>,
) -> Result<Response, ApiError> {
    let ledger = dto::ledger_id(&body.id, "id")?;
    let accepted = submit(
        &state,
        &ledger,
        CommandKind::CreateLedger {
            name: body.name.clone(),
        },
        metadata,
    )
    .await?;
    Ok(answer(
        StatusCode::CREATED,
        accepted.version,
        &LedgerCreated {
            ledger: ledger.to_string(),
            version: accepted.version,
            name: body.name,
        },
        Some(format!("/v1/ledgers/{ledger}")),
    ))
}

/// Close the books through a point in business time.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/periods/close",
    tag = "ledgers",
    params(tally_server::openapi::LedgerPath),
    request_body = ClosePeriodRequest,
    responses(
        (status = 200, description = "Closed", body = PeriodClosed),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`period-already-closed`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`period-in-future`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn close_period(
    State(state): State<AppState>,
    Path(ledger): Path<String>,
    CommandContext(metadata): CommandContext,
    Body(body): Body<ClosePeriodRequest>,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    let accepted = submit(
        &state,
        &ledger,
        CommandKind::ClosePeriod {
            through: body.through,
        },
        metadata,
    )
    .await?;
    Ok(answer(
        StatusCode::OK,
        accepted.version,
        &PeriodClosed {
            ledger: ledger.to_string(),
            version: accepted.version,
            closed_through: body.through,
        },
        None,
    ))
}
