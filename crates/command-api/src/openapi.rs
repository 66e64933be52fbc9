//! The OpenAPI 3.1 description of the command API, generated from the handlers and DTOs; served with
//! [`tally_server::openapi`] at `GET /openapi.json` and `GET /docs`.

use tally_server::openapi::{AbsentNotNull, CommonResponses, DeclaredParameters};
use utoipa::OpenApi;

use crate::dto;
use crate::routes::{accounts, ledgers, transfers};

#[derive(OpenApi)]
#[openapi(
    modifiers(&CommonResponses, &AbsentNotNull, &DeclaredParameters),
    info(
        title = "Tally command API",
        description = "The write side of Tally, an event-sourced double-entry ledger. JSON in and out; \
            amounts are decimal strings of minor units; errors are `application/problem+json` (RFC 9457) \
            with a stable `type`. Every command answer carries the consistency token (`ledger`, `version`) \
            in its body and in the `Tally-Version` header."
    ),
    paths(
        ledgers::create_ledger,
        ledgers::close_period,
        accounts::open_account,
        accounts::update_account,
        transfers::create_transfer,
        transfers::create_batch,
        transfers::post_pending,
        transfers::void_pending,
        transfers::reverse,
        livez,
        readyz,
        metrics,
        openapi_json,
        docs,
    ),
    components(schemas(
        tally_server::ProblemBody,
        dto::CreateLedger,
        dto::LedgerCreated,
        dto::OpenAccount,
        dto::UpdateAccount,
        dto::AccountAnswer,
        dto::LimitsDto,
        dto::AccountTypeDto,
        dto::AccountStatusDto,
        dto::SideDto,
        dto::NewTransfer,
        dto::Leg,
        dto::PendingDto,
        dto::TransferBatch,
        dto::BatchAnswer,
        dto::BatchItem,
        dto::ItemStatus,
        dto::PostPendingRequest,
        dto::ReverseRequest,
        dto::ClosePeriodRequest,
        dto::PeriodClosed,
        dto::TransferAnswer,
        dto::Outcome,
        dto::Balance,
        dto::TransferStatusDto,
    )),
    tags(
        (name = "ledgers", description = "Ledgers and period close"),
        (name = "accounts", description = "Opening and changing accounts"),
        (name = "transfers", description = "Transfers, two-phase settlement and corrections"),
        (name = "operations", description = "Health, metrics and this description"),
    )
)]
pub struct ApiDoc;

/// The description as JSON text.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Liveness.
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process serves")))]
#[allow(dead_code)]
fn livez() {}

/// Readiness: 200 only when PostgreSQL answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "`not-ready`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

/// This description.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[allow(dead_code)]
fn openapi_json() {}

/// A browsable rendering of this description.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
#[allow(dead_code)]
fn docs() {}
