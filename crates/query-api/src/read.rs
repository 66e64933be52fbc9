//! The SQL of the query side: reads of the `read` schema (and of the store's `events` and `streams` only
//! to resolve `known_at`). Every multi-statement answer runs in one repeatable-read, read-only
//! transaction ([`snapshot`]), so the version it reports is the version its rows were read at.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use tally_domain::report::ReportInput;
use tally_domain::{AccountCode, AccountType, CurrencyCode, Side, Totals};
use tally_eventstore::EventStore;
use uuid::Uuid;

use crate::dto::{
    AccountLimitsView, AccountView, Balances, EntryView, LedgerView, TransferView, VolumeLine,
};
use crate::error::QueryError;
use crate::params::KnownAt;

/// A consistent view of the read models for the length of one answer. The isolation level is part of
/// the `begin` itself, so that no separate `set transaction` adds a round trip to every answer.
pub async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, QueryError> {
    Ok(pool
        .begin_with("begin isolation level repeatable read, read only")
        .await?)
}

/// [`snapshot`] for statement pages, whose entries query then runs on its generic plan, because the
/// custom plan PostgreSQL keeps choosing for it is planned again on every execution, while the generic
/// plan with parallel workers off is the same index walk (a generic plan cannot see `limit`, so it would
/// otherwise start workers as if to read the whole account). Both settings end with the transaction and
/// ride on the `begin`'s round trip.
pub async fn statement_snapshot(
    pool: &PgPool,
) -> Result<Transaction<'static, Postgres>, QueryError> {
    Ok(pool
        .begin_with(
            "begin isolation level repeatable read, read only; \
             set local plan_cache_mode = force_generic_plan; \
             set local max_parallel_workers_per_gather = 0",
        )
        .await?)
}

pub fn amount(row: &PgRow, column: &str) -> Result<i128, QueryError> {
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|_| QueryError::Corrupt(format!("{column} is not a 128-bit integer: {text}")))
}

fn side(raw: &str) -> Result<Side, QueryError> {
    match raw {
        "debit" => Ok(Side::Debit),
        "credit" => Ok(Side::Credit),
        other => Err(QueryError::Corrupt(format!("unknown side {other}"))),
    }
}

pub fn account_type(raw: &str) -> Result<AccountType, QueryError> {
    Ok(match raw {
        "asset" => AccountType::Asset,
        "liability" => AccountType::Liability,
        "equity" => AccountType::Equity,
        "revenue" => AccountType::Revenue,
        "expense" => AccountType::Expense,
        other => return Err(QueryError::Corrupt(format!("unknown account type {other}"))),
    })
}

fn text(value: Option<i128>) -> Result<String, QueryError> {
    value
        .map(|v| v.to_string())
        .ok_or_else(|| QueryError::Corrupt("a balance does not fit in 128 bits".into()))
}

const LEDGER_COLUMNS: &str = "l.ledger_id, l.name, l.created_at, l.closed_through, \
     coalesce(c.version, 0) as projected";

fn ledger_view(row: &PgRow) -> Result<LedgerView, QueryError> {
    Ok(LedgerView {
        ledger: row.try_get("ledger_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        closed_through: row.try_get("closed_through")?,
        version: row.try_get("projected")?,
    })
}

/// The ledger and the version its read model has reached, read in the caller's snapshot.
pub async fn ledger(
    conn: &mut PgConnection,
    projection: &str,
    ledger: &str,
) -> Result<LedgerView, QueryError> {
    let row = sqlx::query(&format!(
        "select {LEDGER_COLUMNS} from read.ledgers l \
         left join read.checkpoints c on c.projection = $2 and c.ledger_id = l.ledger_id \
         where l.ledger_id = $1"
    ))
    .bind(ledger)
    .bind(projection)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| QueryError::LedgerNotFound(ledger.to_owned()))?;
    ledger_view(&row)
}

pub async fn ledgers(
    pool: &PgPool,
    projection: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<LedgerView>, QueryError> {
    let rows = sqlx::query(&format!(
        "select {LEDGER_COLUMNS} from read.ledgers l \
         left join read.checkpoints c on c.projection = $1 and c.ledger_id = l.ledger_id \
         where l.ledger_id > coalesce($2, '') order by l.ledger_id limit $3"
    ))
    .bind(projection)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(ledger_view).collect()
}

/// Resolves `known_at` to a ledger version no later than the store's head; a version beyond the head is
/// refused, since nobody knew it yet.
pub async fn known_version(
    conn: &mut PgConnection,
    ledger: &str,
    known_at: KnownAt,
) -> Result<i64, QueryError> {
    let head = EventStore::head_version(&mut *conn, ledger).await?;
    match known_at {
        KnownAt::Version(v) if v > head => Err(QueryError::VersionBeyondHead {
            field: "known_at",
            wanted: v,
            head,
        }),
        KnownAt::Version(v) => Ok(v),
        KnownAt::Instant(at) => Ok(EventStore::version_known_at(&mut *conn, ledger, at).await?),
    }
}

const ACCOUNT_COLUMNS: &str = "code, account_type, normal_side, currency, scale, status, \
     floor::text as floor, ceiling::text as ceiling, metadata, \
     debits_posted::text as debits_posted, credits_posted::text as credits_posted, \
     debits_pending::text as debits_pending, credits_pending::text as credits_pending, version";

fn account_view(row: &PgRow) -> Result<AccountView, QueryError> {
    let normal_side: String = row.try_get("normal_side")?;
    let normal = side(&normal_side)?;
    let totals = Totals {
        debits_posted: amount(row, "debits_posted")?,
        credits_posted: amount(row, "credits_posted")?,
        debits_pending: amount(row, "debits_pending")?,
        credits_pending: amount(row, "credits_pending")?,
    };
    Ok(AccountView {
        code: row.try_get("code")?,
        account_type: row.try_get("account_type")?,
        normal_side,
        currency: row.try_get("currency")?,
        scale: row.try_get("scale")?,
        status: row.try_get("status")?,
        limits: AccountLimitsView {
            floor: row.try_get("floor")?,
            ceiling: row.try_get("ceiling")?,
        },
        metadata: row.try_get("metadata")?,
        balances: Balances {
            posted: text(totals.posted(normal))?,
            pending: text(totals.pending(normal))?,
            available: text(totals.available(normal))?,
            debits_posted: totals.debits_posted.to_string(),
            credits_posted: totals.credits_posted.to_string(),
            debits_pending: totals.debits_pending.to_string(),
            credits_pending: totals.credits_pending.to_string(),
        },
        version: row.try_get("version")?,
    })
}

pub async fn account(
    conn: &mut PgConnection,
    ledger: &str,
    code: &str,
) -> Result<AccountView, QueryError> {
    let row = sqlx::query(&format!(
        "select {ACCOUNT_COLUMNS} from read.accounts where ledger_id = $1 and code = $2"
    ))
    .bind(ledger)
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| QueryError::AccountNotFound(code.to_owned()))?;
    account_view(&row)
}

/// The ledger (as [`ledger`] reads it) and one of its accounts (as [`account`]) in one statement, for the
/// answers that need both: one round trip instead of two.
pub async fn ledger_account(
    conn: &mut PgConnection,
    projection: &str,
    ledger: &str,
    code: &str,
) -> Result<(LedgerView, AccountView), QueryError> {
    let row = sqlx::query(ledger_account_sql())
        .bind(ledger)
        .bind(projection)
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| QueryError::LedgerNotFound(ledger.to_owned()))?;
    let head = ledger_view(&row)?;
    if !row.try_get::<bool, _>("account_found")? {
        return Err(QueryError::AccountNotFound(code.to_owned()));
    }
    Ok((head, account_view(&row)?))
}

/// The SQL of [`ledger_account`], built once from the column lists the single reads use.
fn ledger_account_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        // The account's columns are qualified so they cannot be confused with the ledger's; a missing
        // account leaves them null, a missing ledger leaves no row.
        let account_columns = ACCOUNT_COLUMNS
            .split(", ")
            .map(|column| format!("a.{}", column.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "select {LEDGER_COLUMNS}, a.code is not null as account_found, {account_columns} \
             from read.ledgers l \
             left join read.checkpoints c on c.projection = $2 and c.ledger_id = l.ledger_id \
             left join read.accounts a on a.ledger_id = l.ledger_id and a.code = $3 \
             where l.ledger_id = $1"
        )
    })
}

/// Accounts in code order after `after`, limited to `prefix` and its descendants.
pub async fn accounts(
    conn: &mut PgConnection,
    ledger: &str,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AccountView>, QueryError> {
    // `code = p or code like 'p:%'` keeps `assets-other` out of `assets`; both use the primary key.
    let rows = sqlx::query(&format!(
        "select {ACCOUNT_COLUMNS} from read.accounts \
         where ledger_id = $1 \
           and ($2::text is null or code = $2 or code like $2 || ':%') \
           and code > coalesce($3, '') \
         order by code limit $4"
    ))
    .bind(ledger)
    .bind(prefix)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(account_view).collect()
}

/// Where a balance is taken: after every entry effective at or before an instant (`None`: all of
/// them), or strictly before one entry's position in the statement.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    AsOf(Option<DateTime<Utc>>),
    Before(EntryPosition),
}

/// Where an entry stands in an account's statement, which sorts by these three in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryPosition {
    pub effective_at: DateTime<Utc>,
    pub version: i64,
    pub leg: i32,
}

impl EntryPosition {
    /// Before everything effective at `at`.
    fn start_of(at: DateTime<Utc>) -> Self {
        Self {
            effective_at: at,
            version: i64::MIN,
            leg: i32::MIN,
        }
    }

    /// The position just after this one: "before" it includes the entry here itself.
    fn next(self) -> Self {
        match self.leg.checked_add(1) {
            Some(leg) => Self { leg, ..self },
            None => Self {
                version: self.version.saturating_add(1),
                leg: i32::MIN,
                ..self
            },
        }
    }
}

/// The posted balance of an account on its normal side at `point`, counting only entries recorded at
/// or before `known` (`None`: everything projected). One index lookup for the running balance, plus a
/// scan of the entries recorded after `known` to take back out.
pub async fn balance_at(
    conn: &mut PgConnection,
    ledger: &str,
    code: &str,
    normal_side: &str,
    point: Point,
    known: Option<i64>,
) -> Result<i128, QueryError> {
    let (at, version, leg, strict) = match point {
        Point::AsOf(at) => (at, i64::MAX, i32::MAX, false),
        Point::Before(p) => (Some(p.effective_at), p.version, p.leg, true),
    };
    // As of an instant: the last entry with effective_at <= at (any version, any leg). Before a
    // position: the last entry whose (effective_at, version, leg) sorts before it.
    let row = sqlx::query(
        "select \
           coalesce((select balance_after from read.entries \
                     where ledger_id = $1 and account = $2 \
                       and (effective_at, version, leg) <= (coalesce($3, 'infinity'::timestamptz), $4, $5) \
                       and not ($6 and (effective_at, version, leg) = ($3, $4, $5)) \
                     order by effective_at desc, version desc, leg desc limit 1), 0)::text as running, \
           coalesce((select sum(case when side = $8 then amount else -amount end) from read.entries \
                     where ledger_id = $1 and account = $2 and version > $7 \
                       and (effective_at, version, leg) <= (coalesce($3, 'infinity'::timestamptz), $4, $5) \
                       and not ($6 and (effective_at, version, leg) = ($3, $4, $5))), 0)::text as unknown",
    )
    .bind(ledger)
    .bind(code)
    .bind(at)
    .bind(version)
    .bind(leg)
    .bind(strict)
    .bind(known.unwrap_or(i64::MAX))
    .bind(normal_side)
    .fetch_one(&mut *conn)
    .await?;
    amount(&row, "running")?
        .checked_sub(amount(&row, "unknown")?)
        .ok_or_else(balance_out_of_range)
}

/// Which entries of one account a statement covers: effective within `[from, to]`, recorded at or
/// before `known` (`None`: everything projected).
#[derive(Debug, Clone)]
pub struct StatementScope {
    pub ledger: String,
    pub code: String,
    pub normal_side: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub known: Option<i64>,
}

/// A page of a statement: the balance before its first entry, and its entries.
#[derive(Debug)]
pub struct StatementPage {
    pub opening: i128,
    pub entries: Vec<EntryView>,
}

/// A page of an account's statement in business-time order, after `cursor`. Running balances come from
/// the read model, or, for a `known` view, from the opening balance and the page's own rows.
pub async fn entries(
    conn: &mut PgConnection,
    scope: &StatementScope,
    cursor: Option<EntryPosition>,
    limit: i64,
) -> Result<StatementPage, QueryError> {
    let rows = entry_rows(conn, scope, cursor, limit).await?;
    let normal = side(&scope.normal_side)?;
    let opening = match (rows.first(), scope.known) {
        (Some(first), None) => amount(first, "balance_after")?
            .checked_sub(signed_amount(first, normal)?)
            .ok_or_else(balance_out_of_range)?,
        _ => balance_before_page(conn, scope, cursor).await?,
    };
    let mut running = opening;
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let balance_after = if scope.known.is_some() {
            running = running
                .checked_add(signed_amount(row, normal)?)
                .ok_or_else(balance_out_of_range)?;
            running
        } else {
            amount(row, "balance_after")?
        };
        entries.push(entry_view(row, balance_after)?);
    }
    Ok(StatementPage { opening, entries })
}

/// The rows of a statement page, in business-time order.
async fn entry_rows(
    conn: &mut PgConnection,
    scope: &StatementScope,
    cursor: Option<EntryPosition>,
    limit: i64,
) -> Result<Vec<PgRow>, QueryError> {
    let start = cursor.or(scope.from.map(EntryPosition::start_of));
    Ok(sqlx::query(
        "select e.effective_at, e.recorded_at, e.version, e.leg, e.transfer_id, e.side, \
                e.amount::text as amount, e.balance_after::text as balance_after, \
                e.description \
         from read.entries e \
         where e.ledger_id = $1 and e.account = $2 \
           and (e.effective_at, e.version, e.leg) > (coalesce($3, '-infinity'::timestamptz), $4, $5) \
           and e.effective_at <= coalesce($6, 'infinity'::timestamptz) \
           and e.version <= $7 \
         order by e.effective_at, e.version, e.leg limit $8",
    )
    .bind(&scope.ledger)
    .bind(&scope.code)
    .bind(start.map(|p| p.effective_at))
    .bind(start.map_or(i64::MIN, |p| p.version))
    .bind(start.map_or(i32::MIN, |p| p.leg))
    .bind(scope.to)
    .bind(scope.known.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// The balance before a page: everything up to and including the cursor's entry, or everything
/// effective before `from`, or nothing.
async fn balance_before_page(
    conn: &mut PgConnection,
    scope: &StatementScope,
    cursor: Option<EntryPosition>,
) -> Result<i128, QueryError> {
    let point = match (cursor, scope.from) {
        (Some(cursor), _) => cursor.next(),
        (None, Some(from)) => EntryPosition::start_of(from),
        (None, None) => return Ok(0),
    };
    balance_at(
        conn,
        &scope.ledger,
        &scope.code,
        &scope.normal_side,
        Point::Before(point),
        scope.known,
    )
    .await
}

/// An entry's amount, positive on the account's normal side.
fn signed_amount(row: &PgRow, normal: Side) -> Result<i128, QueryError> {
    let amount = amount(row, "amount")?;
    let entry_side: String = row.try_get("side")?;
    Ok(if side(&entry_side)? == normal {
        amount
    } else {
        -amount
    })
}

fn entry_view(row: &PgRow, balance_after: i128) -> Result<EntryView, QueryError> {
    Ok(EntryView {
        effective_at: row.try_get("effective_at")?,
        recorded_at: row.try_get("recorded_at")?,
        version: row.try_get("version")?,
        leg: row.try_get("leg")?,
        transfer_id: row.try_get("transfer_id")?,
        side: row.try_get("side")?,
        amount: row.try_get("amount")?,
        balance_after: balance_after.to_string(),
        description: row.try_get("description")?,
    })
}

fn balance_out_of_range() -> QueryError {
    QueryError::Corrupt("balance out of range".into())
}

const TRANSFER_COLUMNS: &str = "transfer_id, status, legs, posted_amounts, effective_at, recorded_at, \
     expires_at, description, metadata, reverses, corrects, reason, reversed_by, created_version, version";

pub fn transfer_view(row: &PgRow) -> Result<TransferView, QueryError> {
    Ok(TransferView {
        id: row.try_get("transfer_id")?,
        status: row.try_get("status")?,
        legs: row.try_get("legs")?,
        posted_amounts: row.try_get("posted_amounts")?,
        effective_at: row.try_get("effective_at")?,
        recorded_at: row.try_get("recorded_at")?,
        expires_at: row.try_get("expires_at")?,
        description: row.try_get("description")?,
        metadata: row.try_get("metadata")?,
        reverses: row.try_get("reverses")?,
        corrects: row.try_get("corrects")?,
        reason: row.try_get("reason")?,
        reversed_by: row.try_get("reversed_by")?,
        created_version: row.try_get("created_version")?,
        version: row.try_get("version")?,
    })
}

pub async fn transfer(
    conn: &mut PgConnection,
    ledger: &str,
    id: Uuid,
) -> Result<TransferView, QueryError> {
    let row = sqlx::query(&format!(
        "select {TRANSFER_COLUMNS} from read.transfers where ledger_id = $1 and transfer_id = $2"
    ))
    .bind(ledger)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| QueryError::TransferNotFound(id.to_string()))?;
    transfer_view(&row)
}

/// Filters of the transfer listing.
#[derive(Debug, Default, Clone)]
pub struct TransferFilter {
    pub status: Option<String>,
    pub account: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Transfers newest first (by the version that created them), before `before`.
pub async fn transfers(
    conn: &mut PgConnection,
    ledger: &str,
    filter: &TransferFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<TransferView>, QueryError> {
    let account = filter
        .account
        .as_ref()
        .map(|code| serde_json::json!([{ "account": code }]));
    let rows = sqlx::query(&format!(
        "select {TRANSFER_COLUMNS} from read.transfers \
         where ledger_id = $1 and created_version < $2 \
           and ($3::text is null or status = $3) \
           and ($4::jsonb is null or legs @> $4) \
           and effective_at >= coalesce($5, '-infinity'::timestamptz) \
           and effective_at <= coalesce($6, 'infinity'::timestamptz) \
         order by created_version desc limit $7"
    ))
    .bind(ledger)
    .bind(before.unwrap_or(i64::MAX))
    .bind(&filter.status)
    .bind(account)
    .bind(filter.from)
    .bind(filter.to)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(transfer_view).collect()
}

/// Transfers whose row changed in (after, through]: new ones and ones posted, voided or reversed.
pub async fn transfers_changed(
    pool: &PgPool,
    ledger: &str,
    after: i64,
    through: i64,
) -> Result<Vec<TransferView>, QueryError> {
    let rows = sqlx::query(&format!(
        "select {TRANSFER_COLUMNS} from read.transfers \
         where ledger_id = $1 and version > $2 and version <= $3 order by version"
    ))
    .bind(ledger)
    .bind(after)
    .bind(through)
    .fetch_all(pool)
    .await?;
    rows.iter().map(transfer_view).collect()
}

/// Accounts whose balances or state changed in (after, through].
pub async fn accounts_changed(
    pool: &PgPool,
    ledger: &str,
    after: i64,
    through: i64,
) -> Result<Vec<AccountView>, QueryError> {
    let rows = sqlx::query(&format!(
        "select {ACCOUNT_COLUMNS} from read.accounts \
         where ledger_id = $1 and version > $2 and version <= $3 order by code"
    ))
    .bind(ledger)
    .bind(after)
    .bind(through)
    .fetch_all(pool)
    .await?;
    rows.iter().map(account_view).collect()
}

/// Every account's posted balance at `as_of` as known at `known`, for the reports. Without either, the
/// account totals answer directly; otherwise one index lookup per account (plus entries recorded later).
pub async fn report_inputs(
    conn: &mut PgConnection,
    ledger: &str,
    as_of: Option<DateTime<Utc>>,
    known: Option<i64>,
) -> Result<Vec<ReportInput>, QueryError> {
    let rows = if as_of.is_none() && known.is_none() {
        sqlx::query(
            "select code, account_type, currency, \
                    (case when normal_side = 'debit' then debits_posted - credits_posted \
                          else credits_posted - debits_posted end)::text as balance \
             from read.accounts where ledger_id = $1 order by code",
        )
        .bind(ledger)
        .fetch_all(&mut *conn)
        .await?
    } else {
        sqlx::query(
            "select a.code, a.account_type, a.currency, \
               (coalesce((select e.balance_after from read.entries e \
                          where e.ledger_id = a.ledger_id and e.account = a.code \
                            and e.effective_at <= coalesce($2, 'infinity'::timestamptz) \
                          order by e.effective_at desc, e.version desc, e.leg desc limit 1), 0) \
                - coalesce((select sum(case when e.side = a.normal_side then e.amount else -e.amount end) \
                            from read.entries e \
                            where e.ledger_id = a.ledger_id and e.account = a.code and e.version > $3 \
                              and e.effective_at <= coalesce($2, 'infinity'::timestamptz)), 0))::text as balance \
             from read.accounts a where a.ledger_id = $1 order by a.code",
        )
        .bind(ledger)
        .bind(as_of)
        .bind(known.unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?
    };
    rows.iter()
        .map(|row| {
            let code: String = row.try_get("code")?;
            let currency: String = row.try_get("currency")?;
            let kind: String = row.try_get("account_type")?;
            Ok(ReportInput {
                code: AccountCode::parse(&code)
                    .map_err(|e| QueryError::Corrupt(format!("account code {code}: {e}")))?,
                account_type: account_type(&kind)?,
                currency: CurrencyCode::parse(&currency)
                    .map_err(|e| QueryError::Corrupt(format!("currency {currency}: {e}")))?,
                balance: amount(row, "balance")?,
            })
        })
        .collect()
}

/// Posted volumes per account and bucket (`day`, `week` or `month`) over `[from, to]`.
pub async fn volumes(
    conn: &mut PgConnection,
    ledger: &str,
    prefix: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    bucket: &str,
    limit: i64,
) -> Result<Vec<VolumeLine>, QueryError> {
    let rows = sqlx::query(
        "select date_trunc($5, day)::date as bucket, account, currency, \
                sum(debits)::text as debits, sum(credits)::text as credits, sum(entries)::bigint as entries \
         from read.daily_volumes \
         where ledger_id = $1 and day between $2 and $3 \
           and ($4::text is null or account = $4 or account like $4 || ':%') \
         group by 1, account, currency order by 1, account limit $6",
    )
    .bind(ledger)
    .bind(from)
    .bind(to)
    .bind(prefix)
    .bind(bucket)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(VolumeLine {
                bucket: row.try_get("bucket")?,
                account: row.try_get("account")?,
                currency: row.try_get("currency")?,
                debits: row.try_get("debits")?,
                credits: row.try_get("credits")?,
                entries: row.try_get("entries")?,
            })
        })
        .collect()
}
