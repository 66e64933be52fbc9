//! Transfers: single, batch, two-phase settlement (post, void) and corrections (reverse, rebook).
//!
//! Idempotency: a transfer's `id` is its key. An exact retry answers what the first request answered —
//! the same status and body, including the version the original reached — plus `Tally-Idempotent-Replay:
//! true`; another body under the same id answers 409 `transfer-id-conflict`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use tally_domain::{CommandKind, DomainError, LedgerId, TransferSpec};
use tally_eventstore::{EventMetadata, EventStore};
use tally_server::Problem;
use tally_server::json;
use tally_writer::{Accepted, ItemResult, Submission};
use uuid::Uuid;

use super::{REPLAY_HEADER, answer, submit};
use crate::context::CommandContext;
use crate::dto::{
    self, BatchAnswer, BatchItem, ItemStatus, MAX_BATCH_ITEMS, NewTransfer, Outcome,
    PostPendingRequest, ReverseRequest, TransferAnswer, TransferBatch,
};
use crate::error::{ApiError, domain_problem, rename_field};
use crate::extract::{Body, OptionalBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ledgers/{ledger}/transfers", post(create_transfer))
        .route("/v1/ledgers/{ledger}/transfers/batch", post(create_batch))
        .route(
            "/v1/ledgers/{ledger}/transfers/{id}/post",
            post(post_pending),
        )
        .route(
            "/v1/ledgers/{ledger}/transfers/{id}/void",
            post(void_pending),
        )
        .route("/v1/ledgers/{ledger}/transfers/{id}/reverse", post(reverse))
}

/// Record a transfer, or reserve it with `pending`.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/transfers",
    tag = "transfers",
    params(tally_server::openapi::LedgerPath),
    request_body = NewTransfer,
    responses(
        (status = 201, description = "Accepted (an exact retry answers the same, with `Tally-Idempotent-Replay: true`)", body = TransferAnswer),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`transfer-id-conflict`, `account-frozen`, `account-closed`, `limit-exceeded`, `period-closed`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-amount`, `unbalanced-transfer`, `unknown-account`, `currency-mismatch`, `amount-overflow`, `invalid-body`, ...", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded` (with `Retry-After`), `unavailable`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_transfer(
    State(state): State<AppState>,
    Path(ledger): Path<String>,
    CommandContext(metadata): CommandContext,
    Body(body): Body<NewTransfer>,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    let spec = body.parse("")?;
    let id = spec.id.0;
    let accepted = submit(&state, &ledger, CommandKind::RecordTransfer(spec), metadata).await?;
    created(&state, &ledger, accepted, &[id]).await
}

/// Post many transfers; each is accepted or rejected on its own, or all-or-nothing with `atomic`.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/transfers/batch",
    tag = "transfers",
    params(tally_server::openapi::LedgerPath),
    request_body = TransferBatch,
    responses(
        (status = 200, description = "Per-item results", body = BatchAnswer),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`too-many-items`, `invalid-body`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`, `unavailable`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_batch(
    State(state): State<AppState>,
    Path(ledger): Path<String>,
    CommandContext(metadata): CommandContext,
    Body(body): Body<TransferBatch>,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    let count = body.transfers.len();
    if count == 0 || count > MAX_BATCH_ITEMS {
        return Err(ApiError::TooManyItems {
            max: MAX_BATCH_ITEMS,
            got: count,
        });
    }
    // Each item is parsed on its own, so one malformed item is rejected alone.
    let parsed: Vec<Refusable<TransferSpec>> =
        body.transfers.iter().map(|item| parse_item(item)).collect();
    let results = match (body.atomic, parsed.iter().position(Result::is_err)) {
        (true, Some(failed_index)) => aborted(parsed, failed_index),
        _ => submit_parsed(&state, &ledger, parsed, &metadata, body.atomic).await?,
    };
    let accepted_version = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|a| a.version))
        .max();
    let version = match accepted_version {
        Some(version) => version,
        None => current_version(&state, &ledger).await?,
    };
    let body = batch_answer(&ledger, version, results);
    Ok(answer(StatusCode::OK, version, &body, None))
}

/// One batch item's outcome, or the problem that refused it alone.
type Refusable<T> = Result<T, Box<Problem>>;

/// An atomic batch with a malformed item: nothing is submitted, the refused item keeps its own problem
/// and the others are aborted.
fn aborted(parsed: Vec<Refusable<TransferSpec>>, failed_index: usize) -> Vec<Refusable<Accepted>> {
    parsed
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            Err(match item {
                Err(problem) if index == failed_index => problem,
                _ => Box::new(domain_problem(&DomainError::BatchAborted { failed_index })),
            })
        })
        .collect()
}

/// Where an item stands once the batch is parsed: refused already, or handed to the writer.
enum Slot {
    Refused(Box<Problem>),
    Submitted,
}

/// Submits the items that parsed as one batch and puts each answer back in its item's place.
async fn submit_parsed(
    state: &AppState,
    ledger: &LedgerId,
    parsed: Vec<Refusable<TransferSpec>>,
    metadata: &EventMetadata,
    atomic: bool,
) -> Result<Vec<Refusable<Accepted>>, ApiError> {
    let mut slots = Vec::with_capacity(parsed.len());
    let mut submissions = Vec::with_capacity(parsed.len());
    for item in parsed {
        match item {
            Ok(spec) => {
                slots.push(Slot::Submitted);
                submissions.push(Submission {
                    kind: CommandKind::RecordTransfer(spec),
                    metadata: metadata.clone(),
                });
            }
            Err(problem) => slots.push(Slot::Refused(problem)),
        }
    }
    let answers = if submissions.is_empty() {
        Vec::new()
    } else {
        state
            .writers
            .submit_batch(ledger, submissions, atomic)
            .await?
    };
    let mut answers = answers.into_iter();
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Refused(problem) => Ok(Err(problem)),
            Slot::Submitted => item_answer(answers.next()),
        })
        .collect()
}

/// The writer's answer for one submitted item; an unknown ledger or a missing answer fails the batch.
fn item_answer(answer: Option<ItemResult>) -> Result<Refusable<Accepted>, ApiError> {
    match answer {
        Some(Ok(accepted)) => Ok(Ok(accepted)),
        Some(Err(DomainError::LedgerNotFound)) => Err(DomainError::LedgerNotFound.into()),
        Some(Err(error)) => Ok(Err(Box::new(domain_problem(&error)))),
        None => Err(ApiError::Internal(
            "the writer answered fewer results than items".into(),
        )),
    }
}

/// The 200 body of a batch: one result per item, in order, and the counts.
fn batch_answer(ledger: &LedgerId, version: u64, results: Vec<Refusable<Accepted>>) -> BatchAnswer {
    let items: Vec<BatchItem> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| batch_item(index, result))
        .collect();
    let accepted = items
        .iter()
        .filter(|item| matches!(item.status, ItemStatus::Accepted))
        .count();
    BatchAnswer {
        ledger: ledger.to_string(),
        version,
        accepted,
        rejected: items.len() - accepted,
        results: items,
    }
}

fn batch_item(index: usize, result: Refusable<Accepted>) -> BatchItem {
    match result {
        Ok(a) => BatchItem {
            index,
            status: ItemStatus::Accepted,
            transfer: a.outcomes.first().map(Outcome::from),
            replay: a.duplicate,
            problem: None,
        },
        Err(problem) => BatchItem {
            index,
            status: ItemStatus::Rejected,
            transfer: None,
            replay: false,
            problem: serde_json::to_value(problem.body()).ok(),
        },
    }
}

/// One batch item: its shape, then its values; either failure rejects the item alone.
fn parse_item(item: &serde_json::value::RawValue) -> Refusable<TransferSpec> {
    let transfer = serde_json::from_str::<NewTransfer>(item.get())
        .map_err(|e| Box::new(json::invalid_body(json::without_type_names(&e.to_string()))))?;
    transfer.parse("").map_err(|e| Box::new(e.to_problem()))
}

/// Post a pending transfer, in full or in part.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/transfers/{id}/post",
    tag = "transfers",
    params(
        tally_server::openapi::TransferPath,
    ),
    request_body(content = PostPendingRequest, description = "Optional: without a body the full amounts are posted"),
    responses(
        (status = 200, description = "Posted", body = TransferAnswer),
        (status = 404, description = "`ledger-not-found`, `transfer-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`transfer-not-pending`, `pending-expired`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`post-amounts-mismatch`, `post-exceeds-pending`, `invalid-amount`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn post_pending(
    State(state): State<AppState>,
    Path((ledger, id)): Path<(String, Uuid)>,
    CommandContext(metadata): CommandContext,
    OptionalBody(body): OptionalBody<PostPendingRequest>,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    let command = CommandKind::PostPending(body.parse(id)?);
    let accepted = submit(&state, &ledger, command, metadata).await?;
    settled(&ledger, &accepted)
}

/// Void a pending transfer, releasing its reservation.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/transfers/{id}/void",
    tag = "transfers",
    params(
        tally_server::openapi::TransferPath,
    ),
    responses(
        (status = 200, description = "Voided", body = TransferAnswer),
        (status = 404, description = "`ledger-not-found`, `transfer-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`transfer-not-pending`, `pending-expired`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn void_pending(
    State(state): State<AppState>,
    Path((ledger, id)): Path<(String, Uuid)>,
    CommandContext(metadata): CommandContext,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    let command = CommandKind::VoidPending {
        id: tally_domain::TransferId(id),
    };
    let accepted = submit(&state, &ledger, command, metadata).await?;
    settled(&ledger, &accepted)
}

/// Reverse a posted transfer, optionally rebooking its corrected version atomically.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/transfers/{id}/reverse",
    tag = "transfers",
    params(
        tally_server::openapi::TransferPath,
    ),
    request_body = ReverseRequest,
    responses(
        (status = 201, description = "Reversed (and rebooked); an exact retry answers the same", body = TransferAnswer),
        (status = 404, description = "`ledger-not-found`, `transfer-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`not-reversible`, `transfer-id-conflict`, `period-closed`, ...", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-field`, `rebook-cannot-be-pending`, ...", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn reverse(
    State(state): State<AppState>,
    Path((ledger, id)): Path<(String, Uuid)>,
    CommandContext(metadata): CommandContext,
    Body(body): Body<ReverseRequest>,
) -> Result<Response, ApiError> {
    let ledger = dto::path_ledger(&ledger)?;
    let (reversal, rebook) = body.parse(id)?;
    let mut ids = vec![reversal.id.0];
    let command = match rebook {
        Some(rebook) => {
            ids.push(rebook.id.0);
            CommandKind::ReverseAndRebook { reversal, rebook }
        }
        None => CommandKind::ReverseTransfer(reversal),
    };
    let accepted = match submit(&state, &ledger, command, metadata).await {
        // The domain names the command's fields; the body spells some of them differently.
        Err(ApiError::Domain(error)) => {
            return Err(ApiError::Domain(rename_field(error, reversal_field)));
        }
        other => other?,
    };
    created(&state, &ledger, accepted, &ids).await
}

fn reversal_field(field: &str) -> Option<String> {
    let renamed = match field {
        "id" | "reversal.id" => "reversal_id",
        "original" | "reversal.original" => "id",
        "reversal.reason" => "reason",
        "reversal.effective_at" => "effective_at",
        _ => return None,
    };
    Some(renamed.to_owned())
}

/// The 201 answer of a command that creates transfers; a replay answers the original version.
async fn created(
    state: &AppState,
    ledger: &LedgerId,
    accepted: Accepted,
    ids: &[Uuid],
) -> Result<Response, ApiError> {
    let version = if accepted.duplicate {
        original_version(state, ledger, ids)
            .await
            .unwrap_or(accepted.version)
    } else {
        accepted.version
    };
    let mut outcomes = accepted.outcomes.iter().map(Outcome::from);
    let first = outcomes
        .next()
        .ok_or_else(|| ApiError::Internal("an accepted transfer without an outcome".into()))?;
    let body = TransferAnswer {
        transfer_id: first.transfer_id,
        status: first.status,
        balances: first.balances,
        ledger: ledger.to_string(),
        version,
        rebook: outcomes.next(),
    };
    let location = format!("/v1/ledgers/{ledger}/transfers/{}", body.transfer_id);
    let mut response = answer(StatusCode::CREATED, version, &body, Some(location));
    if accepted.duplicate {
        response
            .headers_mut()
            .insert(REPLAY_HEADER.clone(), HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The 200 answer of a post or void: the transfer's new status and current balances.
fn settled(ledger: &LedgerId, accepted: &Accepted) -> Result<Response, ApiError> {
    let outcome = accepted
        .outcomes
        .first()
        .map(Outcome::from)
        .ok_or_else(|| ApiError::Internal("a settled transfer without an outcome".into()))?;
    Ok(answer(
        StatusCode::OK,
        accepted.version,
        &TransferAnswer {
            transfer_id: outcome.transfer_id,
            status: outcome.status,
            balances: outcome.balances,
            ledger: ledger.to_string(),
            version: accepted.version,
            rebook: None,
        },
        None,
    ))
}

/// The version the ledger reached with the events that created these transfers, so a replay answers the
/// same body as the original. `None` if the store cannot say (then the current version is answered: still
/// a valid consistency token, only a later one).
async fn original_version(state: &AppState, ledger: &LedgerId, ids: &[Uuid]) -> Option<u64> {
    let version = EventStore::latest_version_of_transfers(&state.pool, ledger.as_str(), ids).await;
    match version {
        Ok(version) => version.and_then(|v| u64::try_from(v).ok()),
        Err(error) => {
            tracing::warn!(%error, "original version of a replayed transfer not found");
            None
        }
    }
}

/// The ledger's current version, for a batch in which nothing was accepted; 404 if it does not exist.
async fn current_version(state: &AppState, ledger: &LedgerId) -> Result<u64, ApiError> {
    match state.writers.store().stream_head(ledger.as_str()).await {
        Ok(Some((version, _))) => Ok(u64::try_from(version).unwrap_or(0)),
        Ok(None) => Err(DomainError::LedgerNotFound.into()),
        Err(error) => Err(ApiError::Internal(error.to_string())),
    }
}
