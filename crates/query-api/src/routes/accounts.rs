//! Accounts: the listing by prefix, one account's balances (now, or bitemporally), and its statement.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::cache::{Answer, Freshness};
use crate::dto::{AccountList, BalanceAsOf, EntryView, Statement};
use crate::error::QueryError;
use crate::export;
use crate::extract::{ApiQuery, Format};
use crate::params::{self, Cursor, KnownAt};
use crate::read::{self, EntryPosition, Point, StatementScope};
use crate::routes::{account_code, cache_key, current, freshness, known_version, ledger_id};
use crate::state::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/ledgers/{ledger}/accounts", get(list_accounts))
        .route("/v1/ledgers/{ledger}/accounts/{code}", get(get_account))
        .route(
            "/v1/ledgers/{ledger}/accounts/{code}/entries",
            get(statement),
        )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountListParams {
    /// Whole code segments: `assets` lists `assets` and everything below it (not `assets-other`).
    #[param(schema_with = crate::params::prefix_schema)]
    pub prefix: Option<String>,
    #[param(schema_with = crate::params::cursor_schema)]
    pub cursor: Option<String>,
    /// 1 to 1000, default 100.
    #[param(schema_with = crate::params::limit_schema)]
    pub limit: Option<String>,
}

/// Accounts with their current balances, in code order.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/accounts", tag = "queries",
    params(tally_server::openapi::LedgerPath, AccountListParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "A page of accounts", body = AccountList, headers(("ETag" = String), ("Tally-Version" = i64))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_accounts(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    ApiQuery(params): ApiQuery<AccountListParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    let prefix = params.prefix.as_deref().map(params::prefix).transpose()?;
    let after = params::account_cursor(params.cursor.as_deref())?;
    let limit = params::limit(params.limit.as_deref())?;
    current(&state, &ledger, &uri, &headers, async |tx, head| {
        let items = read::accounts(tx, &ledger, prefix.as_deref(), after.as_deref(), limit).await?;
        Ok(AccountList {
            ledger: ledger.clone(),
            version: head.version,
            next_cursor: Cursor::after_page(&items, limit, |a| Cursor::Account(a.code.clone())),
            items,
        })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BalanceParams {
    /// Business time: count entries effective at or before this instant (RFC 3339, or a date meaning
    /// the end of that day, UTC).
    #[param(schema_with = crate::params::instant_schema)]
    pub as_of: Option<String>,
    /// What the ledger knew: a ledger version, or an instant (the latest version recorded by then).
    #[param(schema_with = crate::params::known_at_schema)]
    pub known_at: Option<String>,
}

/// One account. Without parameters: its current balances (`AccountView`). With `as_of` and/or
/// `known_at`: its posted balance at that business instant as known then (`BalanceAsOf`), so "the
/// balance on 31 March as known on 5 April" is `?as_of=2026-03-31&known_at=2026-04-05`.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/accounts/{code}", tag = "queries",
    params(tally_server::openapi::AccountPath, BalanceParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "The account (current) or its balance as of / known at", body = crate::dto::AccountOrBalance, headers(("ETag" = String), ("Tally-Version" = i64), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`, `unknown-account`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_account(
    State(state): State<QueryState>,
    Path((ledger, code)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<BalanceParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    let code = account_code(&code)?;
    let as_of = params::optional_end("as_of", params.as_of.as_deref())?;
    let known_at = params::optional_known_at(params.known_at.as_deref())?;
    let key = cache_key(&ledger, &uri);
    if as_of.is_none() && known_at.is_none() {
        return state
            .cached(&ledger, key, &headers, || async {
                // One statement is its own snapshot: no transaction needed.
                let mut conn = state.pool.acquire().await?;
                let (head, account) =
                    read::ledger_account(&mut conn, &state.settings.projection, &ledger, &code)
                        .await?;
                drop(conn);
                Ok(Answer::json(head.version, &account, Freshness::Revalidate)?)
            })
            .await;
    }
    state
        .cached(&ledger, key, &headers, || async {
            let known = known_version(&state, &ledger, known_at).await?;
            let mut tx = read::snapshot(&state.pool).await?;
            let (head, account) =
                read::ledger_account(&mut tx, &state.settings.projection, &ledger, &code).await?;
            let posted = read::balance_at(
                &mut tx,
                &ledger,
                &code,
                &account.normal_side,
                Point::AsOf(as_of),
                known,
            )
            .await?;
            tx.commit().await?;
            let view = BalanceAsOf {
                ledger: ledger.clone(),
                code: account.code,
                currency: account.currency,
                scale: account.scale,
                normal_side: account.normal_side,
                as_of,
                known_at_version: known.unwrap_or(head.version),
                posted: posted.to_string(),
            };
            let fresh = freshness(known_at, as_of, head.closed_through);
            Ok(Answer::json(head.version, &view, fresh)?)
        })
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementParams {
    /// Entries effective at or after this instant (a date means its start).
    #[param(schema_with = crate::params::instant_schema)]
    pub from: Option<String>,
    /// Entries effective at or before this instant (a date means its end).
    #[param(schema_with = crate::params::instant_schema)]
    pub to: Option<String>,
    #[param(schema_with = crate::params::cursor_schema)]
    pub cursor: Option<String>,
    /// 1 to 1000, default 100 (exports stream everything in range).
    #[param(schema_with = crate::params::limit_schema)]
    pub limit: Option<String>,
    /// Only entries recorded by this ledger version or instant; running balances as known then.
    #[param(schema_with = crate::params::known_at_schema)]
    pub known_at: Option<String>,
    /// `json` (default), `csv` or `ndjson`; or use the `Accept` header.
    #[param(schema_with = crate::params::format_schema)]
    pub format: Option<String>,
}

/// An account's statement in business-time order with the running posted balance, paged by cursor
/// (stable under concurrent inserts). CSV and NDJSON stream every entry in range.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/accounts/{code}/entries", tag = "queries",
    params(tally_server::openapi::AccountPath, StatementParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "A statement page (JSON) or the whole range (CSV, NDJSON)", body = Statement),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`, `unknown-account`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 406, description = "`not-acceptable`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn statement(
    State(state): State<QueryState>,
    Path((ledger, code)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<StatementParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let ledger = ledger_id(&ledger)?;
    let code = account_code(&code)?;
    let from = params::optional_start("from", params.from.as_deref())?;
    let to = params::optional_end("to", params.to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(QueryError::invalid("from", "must not be after `to`"));
    }
    let request = StatementRequest {
        ledger,
        code,
        from,
        to,
        cursor: params::entry_cursor(params.cursor.as_deref())?,
        limit: params::limit(params.limit.as_deref())?,
        known_at: params::optional_known_at(params.known_at.as_deref())?,
    };
    match Format::negotiate(params.format.as_deref(), &headers)? {
        Format::Json => statement_page(&state, &request, &uri, &headers).await,
        format => statement_export(state, request, format, &headers).await,
    }
}

/// A statement request, its parameters parsed.
struct StatementRequest {
    ledger: String,
    code: String,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<EntryPosition>,
    limit: i64,
    known_at: Option<KnownAt>,
}

impl StatementRequest {
    /// The entries asked for, of an account on `normal_side`, as known at version `known`.
    fn scope(&self, normal_side: String, known: Option<i64>) -> StatementScope {
        StatementScope {
            ledger: self.ledger.clone(),
            code: self.code.clone(),
            normal_side,
            from: self.from,
            to: self.to,
            known,
        }
    }
}

/// One page of a statement as cached JSON, with the cursor of the next.
async fn statement_page(
    state: &QueryState,
    request: &StatementRequest,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, QueryError> {
    let ledger = &request.ledger;
    state
        .cached(ledger, cache_key(ledger, uri), headers, || async {
            let known = known_version(state, ledger, request.known_at).await?;
            let mut tx = read::statement_snapshot(&state.pool).await?;
            let (head, account) =
                read::ledger_account(&mut tx, &state.settings.projection, ledger, &request.code)
                    .await?;
            let scope = request.scope(account.normal_side.clone(), known);
            let page = read::entries(&mut tx, &scope, request.cursor, request.limit).await?;
            tx.commit().await?;
            let body = Statement {
                ledger: ledger.clone(),
                code: account.code,
                currency: account.currency,
                scale: account.scale,
                version: head.version,
                known_at_version: known,
                opening_balance: page.opening.to_string(),
                next_cursor: Cursor::after_page(&page.entries, request.limit, |e| {
                    Cursor::from(position(e))
                }),
                entries: page.entries,
            };
            let fresh = freshness(request.known_at, request.to, head.closed_through);
            Ok(Answer::json(head.version, &body, fresh)?)
        })
        .await
}

/// The whole range of a statement as CSV or NDJSON, read page by page as the body streams.
async fn statement_export(
    state: QueryState,
    request: StatementRequest,
    format: Format,
    headers: &HeaderMap,
) -> Result<Response, QueryError> {
    let ledger = &request.ledger;
    state.consistent(ledger, headers).await?;
    let known = known_version(&state, ledger, request.known_at).await?;
    // Fail before the 200 is sent: once streaming, an error can only cut the body short.
    let mut conn = state.pool.acquire().await?;
    let (_, account) =
        read::ledger_account(&mut conn, &state.settings.projection, ledger, &request.code).await?;
    drop(conn);
    let filename = format!("statement-{ledger}-{}", request.code.replace(':', "_"));
    let scope = request.scope(account.normal_side, known);
    Ok(export::stream(
        format,
        &filename,
        &ENTRY_COLUMNS,
        statement_pages(state, scope, request.cursor),
    ))
}

fn position(entry: &EntryView) -> EntryPosition {
    EntryPosition {
        effective_at: entry.effective_at,
        version: entry.version,
        leg: entry.leg,
    }
}

const ENTRY_COLUMNS: [&str; 9] = [
    "effective_at",
    "recorded_at",
    "version",
    "leg",
    "transfer_id",
    "side",
    "amount",
    "balance_after",
    "description",
];

/// Pages of a statement for the exports, read one after another as the body streams.
fn statement_pages(
    state: QueryState,
    scope: StatementScope,
    cursor: Option<EntryPosition>,
) -> impl futures_util::Stream<Item = Result<export::Rows, QueryError>> + Send + 'static {
    const PAGE: i64 = 1000;
    futures_util::stream::try_unfold(Some(cursor), move |position_after| {
        let (state, scope) = (state.clone(), scope.clone());
        async move {
            let Some(cursor) = position_after else {
                return Ok(None);
            };
            let mut conn = state.pool.acquire().await?;
            let entries = read::entries(&mut conn, &scope, cursor, PAGE)
                .await?
                .entries;
            if entries.is_empty() {
                return Ok(None);
            }
            let full = i64::try_from(entries.len()).is_ok_and(|len| len == PAGE);
            let next = full.then(|| entries.last().map(position));
            let rows = entries.into_iter().map(entry_row).collect();
            Ok(Some((rows, next)))
        }
    })
}

fn entry_row(e: EntryView) -> Vec<Value> {
    vec![
        Value::String(e.effective_at.to_rfc3339()),
        Value::String(e.recorded_at.to_rfc3339()),
        Value::from(e.version),
        Value::from(e.leg),
        Value::String(e.transfer_id.to_string()),
        Value::String(e.side),
        Value::String(e.amount),
        Value::String(e.balance_after),
        Value::String(e.description),
    ]
}
