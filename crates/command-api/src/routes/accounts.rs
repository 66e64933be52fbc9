//! `POST /v1/ledgers/{ledger}/accounts` and `PATCH /v1/ledgers/{ledger}/accounts/{code}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{patch, post};
use tally_domain::CommandKind;
use tally_server::Problem;
use tally_writer::Submission;

use super::{answer, submit, submit_atomic};
use crate::context::CommandContext;
use crate::dto::{self, AccountAnswer, AccountStatusDto, OpenAccount, UpdateAccount};
use crate::error::ApiError;
use crate::extract::Body;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ledgers/{ledger}/accounts", post(open_account))
        .route(
            "/v1/ledgers/{ledger}/accounts/{code}",
            patch(update_account),
        )
}

/// Open an account.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/accounts",
    tag = "accounts",
    params(tally_server::openapi::LedgerPath),
    request_body = OpenAccount,
    responses(
        (status = 201, description = "Opened", body = AccountAnswer),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`account-already-exists`, `currency-scale-mismatch`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-field`, `invalid-body`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn open_account(
    State(state): State<AppState>,
    Path(ledger): Path<String>,
    CommandContext(metadata): CommandContext,
    Body(body): Body<OpenAccount>,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    let kind = body.parse()?;
    let code = match &kind {
        CommandKind::OpenAccount { code, .. } => code.to_string(),
        _ => String::new(),
    };
    let accepted = submit(&state, &ledger, kind, metadata).await?;
    Ok(answer(
        StatusCode::CREATED,
        accepted.version,
        &AccountAnswer {
            ledger: ledger.to_string(),
            version: accepted.version,
            code: code.clone(),
        },
        Some(format!("/v1/ledgers/{ledger}/accounts/{code}")),
    ))
}

/// Freeze, unfreeze or close an account, or replace its limits or metadata; all named changes apply
/// atomically.
#[utoipa::path(
    patch,
    path = "/v1/ledgers/{ledger}/accounts/{code}",
    tag = "accounts",
    params(
        tally_server::openapi::AccountPath,
    ),
    request_body = UpdateAccount,
    responses(
        (status = 200, description = "Changed", body = AccountAnswer),
        (status = 404, description = "`ledger-not-found`, `unknown-account`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`invalid-account-status`, `account-not-empty`, `limits-violated-by-balance`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`empty-update`, `invalid-field`, `invalid-body`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn update_account(
    State(state): State<AppState>,
    Path((ledger, code)): Path<(String, String)>,
    CommandContext(metadata): CommandContext,
    Body(body): Body<UpdateAccount>,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    // A code that does not parse cannot name an existing account.
    let account = tally_domain::AccountCode::parse(&code).map_err(|_| {
        ApiError::from(
            Problem::new("unknown-account", StatusCode::NOT_FOUND, "Unknown account")
                .detail("code: no account can have this code")
                .extension("field", "code"),
        )
    })?;

    let mut kinds = Vec::new();
    // Unfreezing comes first and freezing or closing last, so the other changes apply to an open account.
    if body.status == Some(AccountStatusDto::Open) {
        kinds.push(CommandKind::UnfreezeAccount {
            code: account.clone(),
        });
    }
    if let Some(limits) = &body.limits {
        kinds.push(CommandKind::SetAccountLimits {
            code: account.clone(),
            limits: limits.parse("limits")?,
        });
    }
    if body.metadata.is_some() {
        kinds.push(CommandKind::SetAccountMetadata {
            code: account.clone(),
            metadata: dto::metadata(body.metadata, "metadata")?,
        });
    }
    match body.status {
        Some(AccountStatusDto::Frozen) => kinds.push(CommandKind::FreezeAccount {
            code: account.clone(),
        }),
        Some(AccountStatusDto::Closed) => kinds.push(CommandKind::CloseAccount {
            code: account.clone(),
        }),
        Some(AccountStatusDto::Open) | None => {}
    }
    if kinds.is_empty() {
        return Err(ApiError::EmptyUpdate);
    }

    let items = kinds
        .into_iter()
        .map(|kind| Submission {
            kind,
            metadata: metadata.clone(),
        })
        .collect();
    let accepted = submit_atomic(&state, &ledger, items).await?;
    Ok(answer(
        StatusCode::OK,
        accepted.version,
        &AccountAnswer {
            ledger: ledger.to_string(),
            version: accepted.version,
            code: account.to_string(),
        },
        None,
    ))
}
