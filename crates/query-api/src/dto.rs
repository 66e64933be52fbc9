//! The JSON the query API answers with. Amounts are decimal strings of minor units, as on the command side.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A ledger as the read model holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerView {
    pub ledger: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Transfers may not be effective at or before this instant.
    pub closed_through: Option<DateTime<Utc>>,
    /// The ledger version the read model has reached (the consistency token to compare with).
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerList {
    pub items: Vec<LedgerView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Current balances of an account, all on the account's normal side except the four raw totals.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Balances {
    pub posted: String,
    /// Net effect of open reservations.
    pub pending: String,
    /// Posted minus reservations that take money out.
    pub available: String,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountLimitsView {
    pub floor: Option<String>,
    pub ceiling: Option<String>,
}

/// An account with its current balances.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    pub code: String,
    #[serde(rename = "type")]
    pub account_type: String,
    pub normal_side: String,
    pub currency: String,
    pub scale: i16,
    pub status: String,
    pub limits: AccountLimitsView,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub balances: Balances,
    /// The ledger version that last changed this account.
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountList {
    pub ledger: String,
    /// The ledger version this page was read at.
    pub version: i64,
    pub items: Vec<AccountView>,
    pub next_cursor: Option<String>,
}

/// The answer of `GET /v1/ledgers/{ledger}/accounts/{code}`: the account with its current balances, or
/// (with `as_of` or `known_at`) its balance at that instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AccountOrBalance {
    Current(Box<AccountView>),
    AsOf(BalanceAsOf),
}

/// An account's posted balance at a business instant, as the ledger knew it at a version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceAsOf {
    pub ledger: String,
    pub code: String,
    pub currency: String,
    pub scale: i16,
    pub normal_side: String,
    /// Entries effective at or before this instant count; absent: every posted entry.
    pub as_of: Option<DateTime<Utc>>,
    /// Entries recorded at or before this ledger version count.
    pub known_at_version: i64,
    /// Posted balance on the normal side.
    pub posted: String,
}

/// One posted movement on an account, with the running posted balance after it (in business-time order).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntryView {
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// The ledger version that recorded the entry.
    pub version: i64,
    pub leg: i32,
    pub transfer_id: Uuid,
    pub side: String,
    pub amount: String,
    pub balance_after: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Statement {
    pub ledger: String,
    pub code: String,
    pub currency: String,
    pub scale: i16,
    pub version: i64,
    /// Set when the statement shows what the ledger knew at that version.
    pub known_at_version: Option<i64>,
    /// Posted balance before the first entry of this page.
    pub opening_balance: String,
    pub entries: Vec<EntryView>,
    pub next_cursor: Option<String>,
}

/// A transfer and its lifecycle.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferView {
    pub id: Uuid,
    /// `posted`, `pending`, `voided`, `expired` or `reversed`.
    pub status: String,
    #[schema(value_type = Vec<Object>)]
    pub legs: serde_json::Value,
    /// For a pending transfer posted in part: the amounts that were posted, per leg.
    #[schema(value_type = Option<Vec<String>>)]
    pub posted_amounts: Option<serde_json::Value>,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub description: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub reverses: Option<Uuid>,
    pub corrects: Option<Uuid>,
    pub reason: Option<String>,
    pub reversed_by: Option<Uuid>,
    pub created_version: i64,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferList {
    pub ledger: String,
    pub version: i64,
    pub items: Vec<TransferView>,
    pub next_cursor: Option<String>,
}

/// A line of a trial balance: an account, or a node of the code hierarchy totalling the accounts below.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrialBalanceLine {
    pub code: String,
    pub level: usize,
    /// The account type when the line is an account; absent on a pure roll-up node.
    #[serde(rename = "type")]
    pub account_type: Option<String>,
    pub debit: String,
    pub credit: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrialBalanceCurrency {
    pub currency: String,
    pub lines: Vec<TrialBalanceLine>,
    pub total_debit: String,
    pub total_credit: String,
    pub balanced: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrialBalanceReport {
    pub ledger: String,
    pub version: i64,
    /// Absent: every posted entry, whatever its business time.
    pub as_of: Option<DateTime<Utc>>,
    pub known_at_version: i64,
    pub currencies: Vec<TrialBalanceCurrency>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionLine {
    pub code: String,
    pub level: usize,
    pub is_account: bool,
    pub balance: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportSection {
    pub lines: Vec<SectionLine>,
    pub total: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceSheetCurrency {
    pub currency: String,
    pub assets: ReportSection,
    pub liabilities: ReportSection,
    pub equity: ReportSection,
    /// Revenue minus expenses not yet closed into equity.
    pub current_earnings: String,
    pub balanced: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceSheetReport {
    pub ledger: String,
    pub version: i64,
    /// Absent: every posted entry, whatever its business time.
    pub as_of: Option<DateTime<Utc>>,
    pub known_at_version: i64,
    pub currencies: Vec<BalanceSheetCurrency>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncomeStatementCurrency {
    pub currency: String,
    pub revenue: ReportSection,
    pub expenses: ReportSection,
    pub net_income: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncomeStatementReport {
    pub ledger: String,
    pub version: i64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub known_at_version: i64,
    pub currencies: Vec<IncomeStatementCurrency>,
}

/// Posted debits and credits of one account in one bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VolumeLine {
    /// First day of the bucket.
    pub bucket: NaiveDate,
    pub account: String,
    pub currency: String,
    pub debits: String,
    pub credits: String,
    pub entries: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VolumeReport {
    pub ledger: String,
    pub version: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// `day`, `week` (starting Monday) or `month`.
    pub bucket: String,
    pub lines: Vec<VolumeLine>,
}

/// One recorded event, as the store holds it (the audit trail).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub position: i64,
    pub version: i64,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: i32,
    pub recorded_at: DateTime<Utc>,
    /// Who (actor, client), why (correlation, causation) and the trace context.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// SHA-256 of the previous event's hash and this event's canonical bytes, hex.
    pub hash: String,
    pub prev_hash: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    pub ledger: String,
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// The outcome of recomputing a ledger's hash chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerifyView {
    pub ledger: String,
    pub intact: bool,
    /// Intact: the version verified through.
    pub version: Option<i64>,
    /// Intact: the head hash, hex (compare it with one kept elsewhere to prove nothing was rewritten).
    pub head_hash: Option<String>,
    /// Not intact: `tampered-event`, `missing-event` or `head-mismatch`.
    pub problem: Option<String>,
    /// Not intact: the first version that fails.
    pub at_version: Option<i64>,
}
