//! Reports: roll-up over the code hierarchy, columns and sections by normal side, per currency.

use tally_domain::report::{
    ReportInput, ReportOverflow, balance_sheet, income_statement, trial_balance,
};
use tally_domain::{AccountCode, AccountType, CurrencyCode};

fn input(code: &str, account_type: AccountType, currency: &str, balance: i128) -> ReportInput {
    ReportInput {
        code: AccountCode::parse(code).expect("valid code"),
        account_type,
        currency: CurrencyCode::parse(currency).expect("valid currency"),
        balance,
    }
}

fn books() -> Vec<ReportInput> {
    vec![
        input("assets:cash", AccountType::Asset, "USD", 700),
        input("assets:bank", AccountType::Asset, "USD", 500),
        input("assets-other", AccountType::Asset, "USD", 0),
        input("liabilities:loan", AccountType::Liability, "USD", 400),
        input("equity:capital", AccountType::Equity, "USD", 600),
        input("revenue:sales", AccountType::Revenue, "USD", 300),
        input("expenses:rent", AccountType::Expense, "USD", 100),
        input("assets:cash", AccountType::Asset, "EUR", 50),
        input("equity:capital", AccountType::Equity, "EUR", 50),
    ]
}

#[test]
fn a_trial_balance_rolls_up_the_hierarchy_per_currency_and_balances() {
    let reports = trial_balance(&books()).expect("fits");
    assert_eq!(reports.len(), 2);
    let usd = reports
        .iter()
        .find(|r| r.currency.as_str() == "USD")
        .expect("usd");
    assert!(usd.balanced());
    assert_eq!((usd.total_debit, usd.total_credit), (1300, 1300));
    let codes: Vec<&str> = usd.rows.iter().map(|r| r.code.as_str()).collect();
    // Children follow their parent even though '-' sorts before ':' byte-wise.
    assert_eq!(
        codes,
        [
            "assets",
            "assets:bank",
            "assets:cash",
            "assets-other",
            "equity",
            "equity:capital",
            "expenses",
            "expenses:rent",
            "liabilities",
            "liabilities:loan",
            "revenue",
            "revenue:sales"
        ]
    );
    let assets = &usd.rows[0];
    assert_eq!((assets.debit, assets.credit, assets.level), (1200, 0, 0));
    assert_eq!(assets.account_type, None);
    assert_eq!(usd.rows[1].account_type, Some(AccountType::Asset));
    assert_eq!(usd.rows[1].level, 1);
}

#[test]
fn a_negative_balance_moves_to_the_other_column() {
    let reports = trial_balance(&[
        input("assets:cash", AccountType::Asset, "USD", -5),
        input("liabilities:overdraft", AccountType::Liability, "USD", -5),
    ])
    .expect("fits");
    let rows = &reports[0].rows;
    let cash = rows.iter().find(|r| r.code == "assets:cash").expect("row");
    assert_eq!((cash.debit, cash.credit), (0, 5));
    let overdraft = rows
        .iter()
        .find(|r| r.code == "liabilities:overdraft")
        .expect("row");
    assert_eq!((overdraft.debit, overdraft.credit), (5, 0));
    assert!(reports[0].balanced());
}

#[test]
fn a_balance_sheet_includes_current_earnings_and_balances() {
    let sheets = balance_sheet(&books()).expect("fits");
    let usd = sheets
        .iter()
        .find(|s| s.currency.as_str() == "USD")
        .expect("usd");
    assert_eq!(usd.assets.total, 1200);
    assert_eq!(usd.liabilities.total, 400);
    assert_eq!(usd.equity.total, 600);
    assert_eq!(usd.current_earnings, 200);
    assert!(usd.balanced());
    let unbalanced =
        balance_sheet(&[input("assets:cash", AccountType::Asset, "USD", 1)]).expect("fits");
    assert!(!unbalanced[0].balanced());
}

#[test]
fn an_income_statement_nets_revenue_against_expenses() {
    let statements = income_statement(&books()).expect("fits");
    let usd = statements
        .iter()
        .find(|s| s.currency.as_str() == "USD")
        .expect("usd");
    assert_eq!(usd.revenue.total, 300);
    assert_eq!(usd.expenses.total, 100);
    assert_eq!(usd.net_income, 200);
    assert_eq!(usd.revenue.rows[0].code, "revenue");
    assert!(!usd.revenue.rows[0].is_account);
    assert!(usd.revenue.rows[1].is_account);
}

#[test]
fn totals_beyond_128_bits_are_an_error_not_a_wrap() {
    let huge = [
        input("assets:a", AccountType::Asset, "USD", i128::MAX),
        input("assets:b", AccountType::Asset, "USD", 1),
    ];
    assert_eq!(trial_balance(&huge), Err(ReportOverflow));
    assert_eq!(balance_sheet(&huge), Err(ReportOverflow));
}
