//! The OpenAPI 3.1 description of the query API; `tally all` and `tally openapi` merge it with the
//! command API's into the one document of the public origin.

use utoipa::OpenApi;

use crate::dto;
use crate::routes::{accounts, audit, ledgers, live, reports, transfers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tally query API",
        description = "The read side of Tally: balances (current, and bitemporal with `as_of` and \
            `known_at`), statements, transfers and reports from the read models, through a cache. Every \
            ledger-scoped answer carries the read model's ledger version as `ETag` and `Tally-Version`; \
            `If-None-Match` answers 304; `Tally-Min-Version` waits until the read model has reached a \
            command's consistency token."
    ),
    paths(
        ledgers::list_ledgers,
        ledgers::get_ledger,
        accounts::list_accounts,
        accounts::get_account,
        accounts::statement,
        transfers::list_transfers,
        transfers::get_transfer,
        reports::trial_balance,
        reports::balance_sheet,
        reports::income_statement,
        reports::volumes,
        live::live,
        audit::events,
        audit::verify,
    ),
    components(schemas(
        tally_server::ProblemBody,
        dto::LedgerView,
        dto::LedgerList,
        dto::Balances,
        dto::AccountLimitsView,
        dto::AccountView,
        dto::AccountList,
        dto::BalanceAsOf,
        dto::EntryView,
        dto::Statement,
        dto::TransferView,
        dto::TransferList,
        dto::TrialBalanceLine,
        dto::TrialBalanceCurrency,
        dto::TrialBalanceReport,
        dto::SectionLine,
        dto::ReportSection,
        dto::BalanceSheetCurrency,
        dto::BalanceSheetReport,
        dto::IncomeStatementCurrency,
        dto::IncomeStatementReport,
        dto::VolumeLine,
        dto::VolumeReport,
        dto::EventView,
        dto::EventPage,
        dto::VerifyView,
    )),
    tags(
        (name = "queries", description = "Ledgers, accounts, statements, transfers and live updates"),
        (name = "reports", description = "Trial balance, balance sheet, income statement and volumes"),
        (name = "audit", description = "The event trail and hash-chain verification"),
    )
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
