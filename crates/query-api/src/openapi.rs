//! The OpenAPI 3.1 description of the query API; `tally all` and `tally openapi` merge it with the
//! command API's into the one document of the public origin.

use tally_server::openapi::{AbsentNotNull, CommonResponses, DeclaredParameters};
use tally_server::problem::PROBLEM_CONTENT_TYPE;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::routes::{accounts, audit, ledgers, live, reports, transfers};

#[derive(OpenApi)]
#[openapi(
    modifiers(&CommonResponses, &AbsentNotNull, &DeclaredParameters, &QueryResponses),
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
        dto::AccountOrBalance,
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

/// What the query side's shared parameters add to every operation that takes them, stated once:
/// `Tally-Min-Version` and `known_at` can answer 409 `version-beyond-head`, and `format` makes the 200
/// answer CSV or NDJSON besides JSON.
struct QueryResponses;

impl Modify for QueryResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            if let Some(operation) = item.get.as_mut() {
                add_query_responses(operation);
            }
        }
    }
}

fn add_query_responses(operation: &mut Operation) {
    let takes = |name: &str| {
        operation
            .parameters
            .iter()
            .flatten()
            .any(|parameter| parameter.name == name)
    };
    let versioned = takes("Tally-Min-Version") || takes("known_at");
    let formatted = takes("format");
    let responses = &mut operation.responses.responses;
    if versioned {
        responses.entry("409".to_owned()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(
                        "`version-beyond-head`: `Tally-Min-Version` or `known_at` names a version the \
                         ledger has not reached (`head` says which it has)",
                    )
                    .content(
                        PROBLEM_CONTENT_TYPE,
                        Content::new(Some(Ref::from_schema_name("Problem"))),
                    )
                    .build(),
            )
        });
    }
    if formatted && let Some(RefOr::T(ok)) = responses.get_mut("200") {
        for media in ["text/csv", "application/x-ndjson"] {
            ok.content.entry(media.to_owned()).or_insert_with(|| {
                Content::new(Some(ObjectBuilder::new().schema_type(Type::String)))
            });
        }
    }
}
