//! Financial reports from account balances: trial balance, balance sheet and income statement, per
//! currency, rolled up over the account code hierarchy (`assets` totals `assets:cash` and `assets:bank`).
//!
//! Pure: the caller reads the balances (as of some instant, as known at some version) and this module
//! arranges and sums them. Sums are checked, so a report never wraps silently.

use std::collections::BTreeMap;

use crate::account::{AccountCode, AccountType, CurrencyCode, Side};

/// One account's balance as a report needs it: on the account's normal side, so a positive asset and a
/// positive liability are both "normal".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportInput {
    pub code: AccountCode,
    pub account_type: AccountType,
    pub currency: CurrencyCode,
    pub balance: i128,
}

/// A sum left the 128-bit range; the report cannot be stated exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a report total does not fit in 128 bits")]
pub struct ReportOverflow;

/// A line of a trial balance: an account, or a node of the code hierarchy totalling the accounts below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalanceRow {
    pub code: String,
    /// 0 for a top-level segment (`assets`), 1 for `assets:cash`, ...
    pub level: usize,
    /// `Some` when the line is an account (a node may be an account and have children too).
    pub account_type: Option<AccountType>,
    pub debit: i128,
    pub credit: i128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalance {
    pub currency: CurrencyCode,
    pub rows: Vec<TrialBalanceRow>,
    /// Sums over accounts only (nodes would count them twice).
    pub total_debit: i128,
    pub total_credit: i128,
}

impl TrialBalance {
    /// Double entry guarantees it; a `false` here means the read model is corrupt.
    pub fn balanced(&self) -> bool {
        self.total_debit == self.total_credit
    }
}

/// A line of a balance-sheet or income-statement section, on the section's normal side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionRow {
    pub code: String,
    pub level: usize,
    pub is_account: bool,
    pub balance: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub rows: Vec<SectionRow>,
    pub total: i128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceSheet {
    pub currency: CurrencyCode,
    pub assets: Section,
    pub liabilities: Section,
    pub equity: Section,
    /// Revenue minus expenses not yet closed into equity: it belongs to equity on the sheet.
    pub current_earnings: i128,
}

impl BalanceSheet {
    /// Assets = liabilities + equity + current earnings.
    pub fn balanced(&self) -> bool {
        self.liabilities
            .total
            .checked_add(self.equity.total)
            .and_then(|sum| sum.checked_add(self.current_earnings))
            == Some(self.assets.total)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomeStatement {
    pub currency: CurrencyCode,
    pub revenue: Section,
    pub expenses: Section,
    pub net_income: i128,
}

fn add(a: i128, b: i128) -> Result<i128, ReportOverflow> {
    a.checked_add(b).ok_or(ReportOverflow)
}

/// Segment order, so children follow their parent (`assets`, `assets:cash`, `assets-x`) whatever the
/// byte order of ':' against the other characters of a code.
fn hierarchy_key(code: &str) -> Vec<&str> {
    code.split(':').collect()
}

fn by_currency(inputs: &[ReportInput]) -> BTreeMap<&CurrencyCode, Vec<&ReportInput>> {
    let mut out: BTreeMap<&CurrencyCode, Vec<&ReportInput>> = BTreeMap::new();
    for input in inputs {
        out.entry(&input.currency).or_default().push(input);
    }
    out
}

/// Trial balance per currency: each account's balance in its debit or credit column (a negative
/// balance moves to the other column), every node of the hierarchy with the column sums below it.
pub fn trial_balance(inputs: &[ReportInput]) -> Result<Vec<TrialBalance>, ReportOverflow> {
    let mut out = Vec::new();
    for (currency, accounts) in by_currency(inputs) {
        let mut nodes: BTreeMap<Vec<&str>, TrialBalanceRow> = BTreeMap::new();
        let (mut total_debit, mut total_credit) = (0i128, 0i128);
        for account in accounts {
            let debit_side = account.account_type.normal_side() == Side::Debit;
            let (debit, credit) = match (debit_side, account.balance >= 0) {
                (true, true) => (account.balance, 0),
                (false, true) => (0, account.balance),
                (true, false) => (0, account.balance.checked_neg().ok_or(ReportOverflow)?),
                (false, false) => (account.balance.checked_neg().ok_or(ReportOverflow)?, 0),
            };
            total_debit = add(total_debit, debit)?;
            total_credit = add(total_credit, credit)?;
            for node in account.code.ancestors_and_self() {
                let row = nodes
                    .entry(hierarchy_key(node))
                    .or_insert_with(|| TrialBalanceRow {
                        code: node.to_owned(),
                        level: node.matches(':').count(),
                        account_type: None,
                        debit: 0,
                        credit: 0,
                    });
                row.debit = add(row.debit, debit)?;
                row.credit = add(row.credit, credit)?;
                if node == account.code.as_str() {
                    row.account_type = Some(account.account_type);
                }
            }
        }
        out.push(TrialBalance {
            currency: currency.clone(),
            rows: nodes.into_values().collect(),
            total_debit,
            total_credit,
        });
    }
    Ok(out)
}

/// One section from the accounts of the given types, each balance on the section's side (`side`): an
/// account of the other normal side inside it (a contra account) counts negatively.
fn section(
    accounts: &[&ReportInput],
    types: &[AccountType],
    side: Side,
) -> Result<Section, ReportOverflow> {
    let mut nodes: BTreeMap<Vec<&str>, SectionRow> = BTreeMap::new();
    let mut total = 0i128;
    for account in accounts.iter().filter(|a| types.contains(&a.account_type)) {
        let balance = if account.account_type.normal_side() == side {
            account.balance
        } else {
            account.balance.checked_neg().ok_or(ReportOverflow)?
        };
        total = add(total, balance)?;
        for node in account.code.ancestors_and_self() {
            let row = nodes
                .entry(hierarchy_key(node))
                .or_insert_with(|| SectionRow {
                    code: node.to_owned(),
                    level: node.matches(':').count(),
                    is_account: false,
                    balance: 0,
                });
            row.balance = add(row.balance, balance)?;
            if node == account.code.as_str() {
                row.is_account = true;
            }
        }
    }
    Ok(Section {
        rows: nodes.into_values().collect(),
        total,
    })
}

/// Balance sheet per currency from balances as of one instant.
pub fn balance_sheet(inputs: &[ReportInput]) -> Result<Vec<BalanceSheet>, ReportOverflow> {
    let mut out = Vec::new();
    for (currency, accounts) in by_currency(inputs) {
        let revenue = section(&accounts, &[AccountType::Revenue], Side::Credit)?;
        let expenses = section(&accounts, &[AccountType::Expense], Side::Debit)?;
        out.push(BalanceSheet {
            currency: currency.clone(),
            assets: section(&accounts, &[AccountType::Asset], Side::Debit)?,
            liabilities: section(&accounts, &[AccountType::Liability], Side::Credit)?,
            equity: section(&accounts, &[AccountType::Equity], Side::Credit)?,
            current_earnings: revenue
                .total
                .checked_sub(expenses.total)
                .ok_or(ReportOverflow)?,
        });
    }
    Ok(out)
}

/// Income statement per currency from each revenue and expense account's movement over the period
/// (its balance at the end minus its balance before the start).
pub fn income_statement(movements: &[ReportInput]) -> Result<Vec<IncomeStatement>, ReportOverflow> {
    let mut out = Vec::new();
    for (currency, accounts) in by_currency(movements) {
        let revenue = section(&accounts, &[AccountType::Revenue], Side::Credit)?;
        let expenses = section(&accounts, &[AccountType::Expense], Side::Debit)?;
        let net_income = revenue
            .total
            .checked_sub(expenses.total)
            .ok_or(ReportOverflow)?;
        out.push(IncomeStatement {
            currency: currency.clone(),
            revenue,
            expenses,
            net_income,
        });
    }
    Ok(out)
}
