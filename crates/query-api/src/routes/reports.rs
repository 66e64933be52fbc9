//! Reports: trial balance and balance sheet as of an instant, income statement over a period, each per
//! currency with roll-up over the code hierarchy, and posted volumes per day, week or month. Each as
//! JSON, CSV or NDJSON, and bitemporal (`known_at`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::Value;
use tally_domain::report::{self, Section};
use utoipa::IntoParams;

use crate::cache::Answer;
use crate::dto::{
    BalanceSheetCurrency, BalanceSheetReport, IncomeStatementCurrency, IncomeStatementReport,
    LedgerView, ReportSection, SectionLine, TrialBalanceCurrency, TrialBalanceLine,
    TrialBalanceReport, VolumeReport,
};
use crate::error::QueryError;
use crate::export::{self, Rows};
use crate::extract::{ApiQuery, Format};
use crate::params::{self, KnownAt};
use crate::read;
use crate::routes::{cache_key, freshness, known_version, ledger_id};
use crate::state::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new()
        .route(
            "/v1/ledgers/{ledger}/reports/trial-balance",
            get(trial_balance),
        )
        .route(
            "/v1/ledgers/{ledger}/reports/balance-sheet",
            get(balance_sheet),
        )
        .route(
            "/v1/ledgers/{ledger}/reports/income-statement",
            get(income_statement),
        )
        .route("/v1/ledgers/{ledger}/reports/volumes", get(volumes))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AsOfParams {
    /// Business time (RFC 3339, or a date meaning its end, UTC); absent: every posted entry.
    #[param(schema_with = crate::params::instant_schema)]
    pub as_of: Option<String>,
    /// What the ledger knew: a ledger version or an instant.
    #[param(schema_with = crate::params::known_at_schema)]
    pub known_at: Option<String>,
    /// `json` (default), `csv` or `ndjson`; or use the `Accept` header.
    #[param(schema_with = crate::params::format_schema)]
    pub format: Option<String>,
}

struct Request {
    ledger: String,
    as_of: Option<DateTime<Utc>>,
    known_at: Option<KnownAt>,
    format: Format,
}

fn as_of_request(
    ledger: &str,
    params: &AsOfParams,
    headers: &HeaderMap,
) -> Result<Request, QueryError> {
    Ok(Request {
        ledger: ledger_id(ledger)?,
        as_of: params::optional_end("as_of", params.as_of.as_deref())?,
        known_at: params::optional_known_at(params.known_at.as_deref())?,
        format: Format::negotiate(params.format.as_deref(), headers)?,
    })
}

/// Answers a report as of an instant (or of everything posted), `kind` naming which report.
async fn as_of_report(
    state: &QueryState,
    ledger: &str,
    params: &AsOfParams,
    headers: &HeaderMap,
    uri: &Uri,
    kind: impl FnOnce(Option<DateTime<Utc>>) -> Kind,
) -> Result<Response, QueryError> {
    let request = as_of_request(ledger, params, headers)?;
    let kind = kind(request.as_of);
    answer(state, &request, &kind, uri, headers, request.as_of).await
}

fn money(value: i128) -> String {
    value.to_string()
}

fn section_dto(section: Section) -> ReportSection {
    ReportSection {
        lines: section
            .rows
            .into_iter()
            .map(|row| SectionLine {
                code: row.code,
                level: row.level,
                is_account: row.is_account,
                balance: money(row.balance),
            })
            .collect(),
        total: money(section.total),
    }
}

fn type_name(account_type: tally_domain::AccountType) -> String {
    serde_json::to_value(account_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What to compute.
enum Kind {
    TrialBalance {
        as_of: Option<DateTime<Utc>>,
    },
    BalanceSheet {
        as_of: Option<DateTime<Utc>>,
    },
    IncomeStatement {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    Volumes(VolumeRange),
}

/// The days, bucket size and accounts of a volume report.
struct VolumeRange {
    from: NaiveDate,
    to: NaiveDate,
    bucket: String,
    prefix: Option<String>,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Report {
    TrialBalance(TrialBalanceReport),
    BalanceSheet(BalanceSheetReport),
    IncomeStatement(IncomeStatementReport),
    Volumes(VolumeReport),
}

/// A report flattened for CSV and NDJSON: the file's name, its header and its rows.
struct Export {
    name: &'static str,
    columns: &'static [&'static str],
    rows: Rows,
}

impl Report {
    fn export(&self) -> Export {
        match self {
            Report::TrialBalance(r) => r.export(),
            Report::BalanceSheet(r) => r.export(),
            Report::IncomeStatement(r) => r.export(),
            Report::Volumes(r) => r.export(),
        }
    }
}

/// Answers a report as cached JSON or as an export of its rows.
async fn answer(
    state: &QueryState,
    request: &Request,
    kind: &Kind,
    uri: &Uri,
    headers: &HeaderMap,
    through: Option<DateTime<Utc>>,
) -> Result<Response, QueryError> {
    let ledger = request.ledger.as_str();
    if request.format != Format::Json {
        state.consistent(ledger, headers).await?;
        let Export {
            name,
            columns,
            rows,
        } = read_report(state, request, kind).await?.report.export();
        let chunks: Vec<Result<Rows, QueryError>> =
            rows.chunks(500).map(|c| Ok(c.to_vec())).collect();
        return Ok(export::stream(
            request.format,
            &format!("{name}-{ledger}"),
            columns,
            futures_util::stream::iter(chunks),
        ));
    }
    let key = cache_key(ledger, uri);
    state
        .cached(ledger, key, headers, || async {
            let Computed { report, head } = read_report(state, request, kind).await?;
            let fresh = freshness(request.known_at, through, head.closed_through);
            Ok(Answer::json(head.version, &report, fresh)?)
        })
        .await
}

/// A report and the ledger's head it was computed at.
struct Computed {
    report: Report,
    head: LedgerView,
}

/// Computes a report in one snapshot.
async fn read_report(
    state: &QueryState,
    request: &Request,
    kind: &Kind,
) -> Result<Computed, QueryError> {
    let ledger = request.ledger.as_str();
    let known = known_version(state, ledger, request.known_at).await?;
    let mut tx = read::snapshot(&state.pool).await?;
    let head = read::ledger(&mut tx, &state.settings.projection, ledger).await?;
    let at = Basis {
        ledger,
        version: head.version,
        known,
    };
    let report = build(&mut tx, kind, &at).await?;
    tx.commit().await?;
    Ok(Computed { report, head })
}

/// What a report is computed on: the ledger, its version, and the version it is known at (`None`: the
/// current one).
struct Basis<'a> {
    ledger: &'a str,
    version: i64,
    known: Option<i64>,
}

impl Basis<'_> {
    fn known_at_version(&self) -> i64 {
        self.known.unwrap_or(self.version)
    }
}

async fn build(
    conn: &mut sqlx::PgConnection,
    kind: &Kind,
    at: &Basis<'_>,
) -> Result<Report, QueryError> {
    Ok(match kind {
        Kind::TrialBalance { as_of } => {
            Report::TrialBalance(trial_balance_report(conn, at, *as_of).await?)
        }
        Kind::BalanceSheet { as_of } => {
            Report::BalanceSheet(balance_sheet_report(conn, at, *as_of).await?)
        }
        Kind::IncomeStatement { from, to } => {
            Report::IncomeStatement(income_statement_report(conn, at, *from, *to).await?)
        }
        Kind::Volumes(range) => Report::Volumes(volume_report(conn, at, range).await?),
    })
}

async fn trial_balance_report(
    conn: &mut sqlx::PgConnection,
    at: &Basis<'_>,
    as_of: Option<DateTime<Utc>>,
) -> Result<TrialBalanceReport, QueryError> {
    let inputs = read::report_inputs(conn, at.ledger, as_of, at.known).await?;
    let currencies = report::trial_balance(&inputs)?
        .into_iter()
        .map(|tb| TrialBalanceCurrency {
            balanced: tb.balanced(),
            currency: tb.currency.as_str().to_owned(),
            total_debit: money(tb.total_debit),
            total_credit: money(tb.total_credit),
            lines: tb
                .rows
                .into_iter()
                .map(|row| TrialBalanceLine {
                    code: row.code,
                    level: row.level,
                    account_type: row.account_type.map(type_name),
                    debit: money(row.debit),
                    credit: money(row.credit),
                })
                .collect(),
        })
        .collect();
    Ok(TrialBalanceReport {
        ledger: at.ledger.to_owned(),
        version: at.version,
        as_of,
        known_at_version: at.known_at_version(),
        currencies,
    })
}

async fn balance_sheet_report(
    conn: &mut sqlx::PgConnection,
    at: &Basis<'_>,
    as_of: Option<DateTime<Utc>>,
) -> Result<BalanceSheetReport, QueryError> {
    let inputs = read::report_inputs(conn, at.ledger, as_of, at.known).await?;
    let currencies = report::balance_sheet(&inputs)?
        .into_iter()
        .map(|sheet| BalanceSheetCurrency {
            balanced: sheet.balanced(),
            currency: sheet.currency.as_str().to_owned(),
            current_earnings: money(sheet.current_earnings),
            assets: section_dto(sheet.assets),
            liabilities: section_dto(sheet.liabilities),
            equity: section_dto(sheet.equity),
        })
        .collect();
    Ok(BalanceSheetReport {
        ledger: at.ledger.to_owned(),
        version: at.version,
        as_of,
        known_at_version: at.known_at_version(),
        currencies,
    })
}

async fn income_statement_report(
    conn: &mut sqlx::PgConnection,
    at: &Basis<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<IncomeStatementReport, QueryError> {
    // Movement = balance at the end minus balance just before the start.
    let end = read::report_inputs(conn, at.ledger, Some(to), at.known).await?;
    let before = from - TimeDelta::microseconds(1);
    let start = read::report_inputs(conn, at.ledger, Some(before), at.known).await?;
    let movements = end
        .into_iter()
        .zip(start)
        .map(|(mut e, s)| {
            e.balance = e
                .balance
                .checked_sub(s.balance)
                .ok_or(report::ReportOverflow)?;
            Ok(e)
        })
        .collect::<Result<Vec<_>, report::ReportOverflow>>()?;
    let currencies = report::income_statement(&movements)?
        .into_iter()
        .map(|st| IncomeStatementCurrency {
            currency: st.currency.as_str().to_owned(),
            net_income: money(st.net_income),
            revenue: section_dto(st.revenue),
            expenses: section_dto(st.expenses),
        })
        .collect();
    Ok(IncomeStatementReport {
        ledger: at.ledger.to_owned(),
        version: at.version,
        from,
        to,
        known_at_version: at.known_at_version(),
        currencies,
    })
}

async fn volume_report(
    conn: &mut sqlx::PgConnection,
    at: &Basis<'_>,
    range: &VolumeRange,
) -> Result<VolumeReport, QueryError> {
    let lines = read::volumes(
        conn,
        at.ledger,
        range.prefix.as_deref(),
        range.from,
        range.to,
        &range.bucket,
        MAX_VOLUME_LINES + 1,
    )
    .await?;
    if lines.len() as i64 > MAX_VOLUME_LINES {
        return Err(QueryError::invalid(
            "from",
            format!("more than {MAX_VOLUME_LINES} lines: narrow the range or the prefix"),
        ));
    }
    Ok(VolumeReport {
        ledger: at.ledger.to_owned(),
        version: at.version,
        from: range.from,
        to: range.to,
        bucket: range.bucket.clone(),
        lines,
    })
}

/// A report's lines flattened for CSV and NDJSON.
trait ReportRows {
    const NAME: &'static str;
    const COLUMNS: &'static [&'static str];
    fn rows(&self) -> Rows;

    fn export(&self) -> Export {
        Export {
            name: Self::NAME,
            columns: Self::COLUMNS,
            rows: self.rows(),
        }
    }
}

impl ReportRows for TrialBalanceReport {
    const NAME: &'static str = "trial-balance";
    const COLUMNS: &'static [&'static str] =
        &["currency", "code", "level", "type", "debit", "credit"];
    fn rows(&self) -> Rows {
        let mut rows = Vec::new();
        for currency in &self.currencies {
            for line in &currency.lines {
                rows.push(vec![
                    Value::from(currency.currency.clone()),
                    Value::from(line.code.clone()),
                    Value::from(line.level),
                    line.account_type.clone().map_or(Value::Null, Value::from),
                    Value::from(line.debit.clone()),
                    Value::from(line.credit.clone()),
                ]);
            }
            rows.push(vec![
                Value::from(currency.currency.clone()),
                Value::from("(total)"),
                Value::Null,
                Value::Null,
                Value::from(currency.total_debit.clone()),
                Value::from(currency.total_credit.clone()),
            ]);
        }
        rows
    }
}

/// One currency of a report made of sections (balance sheet, income statement), flattened: each
/// section's lines and total, then one closing line that is not an account's.
struct SectionedCurrency<'a> {
    currency: &'a str,
    sections: Vec<NamedSection<'a>>,
    closing: ClosingLine<'a>,
}

struct NamedSection<'a> {
    name: &'static str,
    section: &'a ReportSection,
}

/// Current earnings or net income: a balance under a label in place of a code.
struct ClosingLine<'a> {
    section: &'static str,
    label: &'static str,
    balance: &'a str,
}

/// The header of reports made of sections.
const SECTION_COLUMNS: &[&str] = &["currency", "section", "code", "level", "balance"];

fn sectioned_rows<'a>(currencies: impl Iterator<Item = SectionedCurrency<'a>>) -> Rows {
    let mut rows = Vec::new();
    for c in currencies {
        for NamedSection { name, section } in c.sections {
            for line in &section.lines {
                rows.push(section_row(
                    c.currency,
                    name,
                    &line.code,
                    Value::from(line.level),
                    &line.balance,
                ));
            }
            rows.push(section_row(
                c.currency,
                name,
                "(total)",
                Value::Null,
                &section.total,
            ));
        }
        let closing = c.closing;
        rows.push(section_row(
            c.currency,
            closing.section,
            closing.label,
            Value::Null,
            closing.balance,
        ));
    }
    rows
}

fn section_row(
    currency: &str,
    section: &str,
    code: &str,
    level: Value,
    balance: &str,
) -> Vec<Value> {
    vec![
        Value::from(currency),
        Value::from(section),
        Value::from(code),
        level,
        Value::from(balance),
    ]
}

impl ReportRows for BalanceSheetReport {
    const NAME: &'static str = "balance-sheet";
    const COLUMNS: &'static [&'static str] = SECTION_COLUMNS;
    fn rows(&self) -> Rows {
        sectioned_rows(self.currencies.iter().map(|c| SectionedCurrency {
            currency: &c.currency,
            sections: vec![
                NamedSection {
                    name: "assets",
                    section: &c.assets,
                },
                NamedSection {
                    name: "liabilities",
                    section: &c.liabilities,
                },
                NamedSection {
                    name: "equity",
                    section: &c.equity,
                },
            ],
            closing: ClosingLine {
                section: "equity",
                label: "(current earnings)",
                balance: &c.current_earnings,
            },
        }))
    }
}

impl ReportRows for IncomeStatementReport {
    const NAME: &'static str = "income-statement";
    const COLUMNS: &'static [&'static str] = SECTION_COLUMNS;
    fn rows(&self) -> Rows {
        sectioned_rows(self.currencies.iter().map(|c| SectionedCurrency {
            currency: &c.currency,
            sections: vec![
                NamedSection {
                    name: "revenue",
                    section: &c.revenue,
                },
                NamedSection {
                    name: "expenses",
                    section: &c.expenses,
                },
            ],
            closing: ClosingLine {
                section: "net",
                label: "(net income)",
                balance: &c.net_income,
            },
        }))
    }
}

impl ReportRows for VolumeReport {
    const NAME: &'static str = "volumes";
    const COLUMNS: &'static [&'static str] = &[
        "bucket", "account", "currency", "debits", "credits", "entries",
    ];
    fn rows(&self) -> Rows {
        self.lines
            .iter()
            .map(|l| {
                vec![
                    Value::from(l.bucket.to_string()),
                    Value::from(l.account.clone()),
                    Value::from(l.currency.clone()),
                    Value::from(l.debits.clone()),
                    Value::from(l.credits.clone()),
                    Value::from(l.entries),
                ]
            })
            .collect()
    }
}

/// Every account's debit or credit balance, rolled up over the code hierarchy, per currency.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/reports/trial-balance", tag = "reports",
    params(tally_server::openapi::LedgerPath, AsOfParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "The trial balance", body = TrialBalanceReport, content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn trial_balance(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    ApiQuery(params): ApiQuery<AsOfParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let kind = |as_of| Kind::TrialBalance { as_of };
    as_of_report(&state, &ledger, &params, &headers, &uri, kind).await
}

/// Assets, liabilities and equity (with current earnings) as of an instant, per currency.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/reports/balance-sheet", tag = "reports",
    params(tally_server::openapi::LedgerPath, AsOfParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "The balance sheet", body = BalanceSheetReport, content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn balance_sheet(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    ApiQuery(params): ApiQuery<AsOfParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let kind = |as_of| Kind::BalanceSheet { as_of };
    as_of_report(&state, &ledger, &params, &headers, &uri, kind).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodParams {
    /// Start of the period (a date means its start).
    #[param(schema_with = crate::params::instant_schema)]
    pub from: String,
    /// End of the period (a date means its end).
    #[param(schema_with = crate::params::instant_schema)]
    pub to: String,
    #[param(schema_with = crate::params::known_at_schema)]
    pub known_at: Option<String>,
    /// `json` (default), `csv` or `ndjson`; or use the `Accept` header.
    #[param(schema_with = crate::params::format_schema)]
    pub format: Option<String>,
}

/// Revenue and expenses over a period and the net income, per currency.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/reports/income-statement", tag = "reports",
    params(tally_server::openapi::LedgerPath, PeriodParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "The income statement", body = IncomeStatementReport, content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn income_statement(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    ApiQuery(params): ApiQuery<PeriodParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let from = params::start_instant("from", &params.from)?;
    let to = params::end_instant("to", &params.to)?;
    if from > to {
        return Err(QueryError::invalid("from", "must not be after `to`"));
    }
    let request = Request {
        ledger: ledger_id(&ledger)?,
        as_of: Some(to),
        known_at: params::optional_known_at(params.known_at.as_deref())?,
        format: Format::negotiate(params.format.as_deref(), &headers)?,
    };
    let kind = Kind::IncomeStatement { from, to };
    answer(&state, &request, &kind, &uri, &headers, Some(to)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VolumeParams {
    /// First day (YYYY-MM-DD); default 30 days before `to`.
    #[param(schema_with = crate::params::day_schema)]
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD); default today (UTC).
    #[param(schema_with = crate::params::day_schema)]
    pub to: Option<String>,
    /// `day` (default), `week` or `month`.
    #[param(schema_with = crate::params::bucket_schema)]
    pub bucket: Option<String>,
    /// Only this account and the accounts below it.
    #[param(schema_with = crate::params::prefix_schema)]
    pub prefix: Option<String>,
    /// `json` (default), `csv` or `ndjson`; or use the `Accept` header.
    #[param(schema_with = crate::params::format_schema)]
    pub format: Option<String>,
}

/// The most lines one volume report holds; narrow the range or the prefix beyond it.
const MAX_VOLUME_LINES: i64 = 10_000;
/// The longest range one volume report covers.
const MAX_VOLUME_DAYS: i64 = 3_660;

fn day(field: &str, raw: &str) -> Result<NaiveDate, QueryError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| QueryError::invalid(field, "expected a date, YYYY-MM-DD"))
}

/// Posted debits, credits and entry counts per account and bucket.
#[utoipa::path(get, path = "/v1/ledgers/{ledger}/reports/volumes", tag = "reports",
    params(tally_server::openapi::LedgerPath, VolumeParams,
           crate::extract::MinVersionHeader),
    responses(
        (status = 200, description = "Volumes", body = VolumeReport, content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 400, description = "`invalid-parameter`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`ledger-not-found`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-projected`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn volumes(
    State(state): State<QueryState>,
    Path(ledger): Path<String>,
    ApiQuery(params): ApiQuery<VolumeParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    let to = match params.to.as_deref() {
        Some(raw) => day("to", raw)?,
        None => Utc::now().date_naive(),
    };
    let from = match params.from.as_deref() {
        Some(raw) => day("from", raw)?,
        None => to - TimeDelta::days(30),
    };
    if from > to {
        return Err(QueryError::invalid("from", "must not be after `to`"));
    }
    if (to - from).num_days() > MAX_VOLUME_DAYS {
        return Err(QueryError::invalid(
            "from",
            format!("the range may span at most {MAX_VOLUME_DAYS} days"),
        ));
    }
    let bucket = params.bucket.clone().unwrap_or_else(|| "day".into());
    if !matches!(bucket.as_str(), "day" | "week" | "month") {
        return Err(QueryError::invalid("bucket", "expected day, week or month"));
    }
    let request = Request {
        ledger: ledger_id(&ledger)?,
        as_of: None,
        known_at: None,
        format: Format::negotiate(params.format.as_deref(), &headers)?,
    };
    let kind = Kind::Volumes(VolumeRange {
        from,
        to,
        bucket,
        prefix: params.prefix.as_deref().map(params::prefix).transpose()?,
    });
    answer(&state, &request, &kind, &uri, &headers, None).await
}
