//! One test per rule: each refusal with the field it names, and the accepted paths around it.

use crate::fixtures::*;
use tally_domain::*;

fn record(s: TransferSpec) -> CommandKind {
    CommandKind::RecordTransfer(s)
}

fn sale(n: u128, amount: i128) -> CommandKind {
    record(spec(
        n,
        vec![
            debit("assets:cash", amount),
            credit("revenue:sales", amount),
        ],
    ))
}

fn spend(n: u128, amount: i128) -> CommandKind {
    record(spec(
        n,
        vec![
            credit("assets:cash", amount),
            debit("equity:capital", amount),
        ],
    ))
}

fn reversal(n: u128, original: u128) -> ReversalSpec {
    ReversalSpec {
        id: id(n),
        original: id(original),
        reason: reason("wrong_amount"),
        effective_at: None,
    }
}

// --- ledgers ---------------------------------------------------------------------------------------

#[test]
fn a_ledger_is_created_once() {
    given([])
        .when(CommandKind::CreateLedger {
            name: "main".into(),
        })
        .then_events(vec![Event::LedgerCreated {
            name: "main".into(),
            created_at: t(100),
        }]);
    given([ledger_created()])
        .when(CommandKind::CreateLedger {
            name: "again".into(),
        })
        .then_err(DomainError::LedgerAlreadyExists);
}

#[test]
fn a_ledger_needs_a_sensible_name() {
    given([])
        .when(CommandKind::CreateLedger { name: "  ".into() })
        .then_err(DomainError::InvalidLedgerName {
            field: "name".into(),
        });
}

#[test]
fn nothing_happens_in_a_ledger_that_does_not_exist() {
    given([])
        .when(sale(1, 5))
        .then_err(DomainError::LedgerNotFound);
}

// --- accounts --------------------------------------------------------------------------------------

fn open(account: &str, currency: &str, scale: u8, limits: Limits) -> CommandKind {
    CommandKind::OpenAccount {
        code: code(account),
        account_type: AccountType::Asset,
        currency: Currency::new(cur(currency), scale).expect("valid"),
        limits,
        metadata: metadata(&[("owner", "ops")]),
    }
}

#[test]
fn an_account_code_is_unique_in_its_ledger() {
    given(standard_accounts())
        .when(open("assets:cash", "USD", 2, Limits::default()))
        .then_err(DomainError::AccountAlreadyExists {
            field: "code".into(),
            code: code("assets:cash"),
        });
}

#[test]
fn a_currency_keeps_one_scale_per_ledger() {
    given(standard_accounts())
        .when(open("assets:bank", "USD", 3, Limits::default()))
        .then_err(DomainError::CurrencyScaleMismatch {
            field: "currency.scale".into(),
            currency: cur("USD"),
            expected: 2,
            got: 3,
        });
    let (ledger, _, _) = given(standard_accounts())
        .when(open("assets:btc", "BTC", 8, Limits::default()))
        .then_ok();
    assert_eq!(ledger.currencies.get(&cur("BTC")), Some(&8));
}

#[test]
fn an_account_cannot_open_outside_its_own_limits() {
    given(standard_accounts())
        .when(open(
            "assets:reserve",
            "USD",
            2,
            Limits::new(Some(10), None).expect("valid"),
        ))
        .then_err(DomainError::LimitsViolatedByBalance {
            field: "limits".into(),
            account: code("assets:reserve"),
        });
}

#[test]
fn freezing_and_unfreezing_follow_the_status() {
    let (frozen, _, _) = given(standard_accounts())
        .when(CommandKind::FreezeAccount {
            code: code("assets:cash"),
        })
        .then_ok();
    assert_eq!(
        frozen.account(&code("assets:cash")).map(|a| a.status),
        Some(AccountStatus::Frozen)
    );
    given(standard_accounts())
        .when(CommandKind::UnfreezeAccount {
            code: code("assets:cash"),
        })
        .then_err(DomainError::InvalidAccountStatus {
            field: "code".into(),
            code: code("assets:cash"),
            status: AccountStatus::Open,
        });
    let (open_again, _, _) = Given { ledger: frozen }
        .when(CommandKind::UnfreezeAccount {
            code: code("assets:cash"),
        })
        .then_ok();
    assert_eq!(
        open_again.account(&code("assets:cash")).map(|a| a.status),
        Some(AccountStatus::Open)
    );
}

#[test]
fn commands_on_an_unknown_account_name_it() {
    given(standard_accounts())
        .when(CommandKind::FreezeAccount {
            code: code("assets:nope"),
        })
        .then_err(DomainError::UnknownAccount {
            field: "code".into(),
            code: code("assets:nope"),
        });
}

#[test]
fn an_account_with_a_balance_cannot_be_closed() {
    given(funded(100))
        .when(CommandKind::CloseAccount {
            code: code("assets:cash"),
        })
        .then_err(DomainError::AccountNotEmpty {
            field: "code".into(),
            code: code("assets:cash"),
        });
}

#[test]
fn an_account_with_an_open_reservation_cannot_be_closed() {
    let mut events = standard_accounts();
    events.push(Event::TransferReserved {
        transfer: pending_spec(
            1,
            vec![debit("assets:cash", 5), credit("revenue:sales", 5)],
            60,
        ),
        recorded_at: t(10),
        expires_at: t(70),
        balances: Vec::new(),
    });
    given(events)
        .when(CommandKind::CloseAccount {
            code: code("revenue:sales"),
        })
        .then_err(DomainError::AccountNotEmpty {
            field: "code".into(),
            code: code("revenue:sales"),
        });
}

#[test]
fn an_empty_account_closes_once() {
    let (closed, _, _) = given(standard_accounts())
        .when(CommandKind::CloseAccount {
            code: code("revenue:sales"),
        })
        .then_ok();
    Given { ledger: closed }
        .when(CommandKind::CloseAccount {
            code: code("revenue:sales"),
        })
        .then_err(DomainError::AccountClosed {
            field: "code".into(),
            code: code("revenue:sales"),
        });
}

#[test]
fn limits_cannot_be_set_below_the_current_balance() {
    given(funded(100))
        .when(CommandKind::SetAccountLimits {
            code: code("assets:cash"),
            limits: Limits::new(Some(101), None).expect("valid"),
        })
        .then_err(DomainError::LimitsViolatedByBalance {
            field: "limits".into(),
            account: code("assets:cash"),
        });
    given(funded(100))
        .when(CommandKind::SetAccountLimits {
            code: code("assets:cash"),
            limits: Limits::new(Some(0), Some(100)).expect("valid"),
        })
        .then_ok();
}

#[test]
fn metadata_of_a_closed_account_is_frozen_in_time() {
    let (closed, _, _) = given(standard_accounts())
        .when(CommandKind::CloseAccount {
            code: code("revenue:sales"),
        })
        .then_ok();
    Given { ledger: closed }
        .when(CommandKind::SetAccountMetadata {
            code: code("revenue:sales"),
            metadata: metadata(&[("a", "b")]),
        })
        .then_err(DomainError::AccountClosed {
            field: "code".into(),
            code: code("revenue:sales"),
        });
}

// --- transfers -------------------------------------------------------------------------------------

#[test]
fn an_accepted_transfer_answers_the_balances_it_touched() {
    let (ledger, events, outcomes) = given(funded(100)).when(spend(2, 30)).then_ok();
    assert_eq!(events.len(), 1);
    assert_eq!(ledger.version, 6);
    let outcome = &outcomes[0];
    assert_eq!(outcome.status, TransferStatus::Posted);
    let cash = outcome
        .balances
        .iter()
        .find(|b| b.account == code("assets:cash"))
        .expect("cash");
    assert_eq!((cash.posted, cash.pending, cash.available), (70, 0, 70));
    let capital = outcome
        .balances
        .iter()
        .find(|b| b.account == code("equity:capital"))
        .expect("capital");
    assert_eq!(capital.posted, 70);
}

#[test]
fn a_transfer_needs_two_legs() {
    given(funded(100))
        .when(record(spec(2, vec![debit("assets:cash", 5)])))
        .then_err(DomainError::TooFewLegs {
            field: "legs".into(),
            count: 1,
        });
}

#[test]
fn a_transfer_has_a_bounded_number_of_legs() {
    let mut legs: Vec<LegSpec> = (0..limits::MAX_LEGS)
        .map(|_| debit("assets:cash", 1))
        .collect();
    legs.push(credit("revenue:sales", 129));
    given(funded(100))
        .when(record(spec(2, legs)))
        .then_err(DomainError::TooManyLegs {
            field: "legs".into(),
            count: 129,
            max: limits::MAX_LEGS,
        });
}

#[test]
fn an_account_appears_at_most_once_per_side() {
    given(funded(100))
        .when(record(spec(
            2,
            vec![
                debit("assets:cash", 1),
                debit("assets:cash", 1),
                credit("revenue:sales", 2),
            ],
        )))
        .then_err(DomainError::DuplicateLeg {
            field: "legs[1].account".into(),
            account: code("assets:cash"),
        });
}

#[test]
fn debits_must_equal_credits_per_currency() {
    given(funded(100))
        .when(record(spec(
            2,
            vec![debit("assets:cash", 5), credit("revenue:sales", 4)],
        )))
        .then_err(DomainError::Unbalanced {
            field: "legs".into(),
            currency: cur("USD"),
            debits: 5,
            credits: 4,
            scale: Some(2),
        });
}

#[test]
fn a_multi_currency_transfer_balances_in_each_currency() {
    let mut events = funded(100);
    events.push(opened("assets:btc", AccountType::Asset, "BTC", 8, Some(0)));
    events.push(opened("equity:btc", AccountType::Equity, "BTC", 8, None));
    let exchange = |btc_credit: i128| {
        record(spec(
            2,
            vec![
                credit("assets:cash", 50),
                debit("equity:capital", 50),
                leg("assets:btc", Side::Debit, 1_000, "BTC"),
                leg("equity:btc", Side::Credit, btc_credit, "BTC"),
            ],
        ))
    };
    given(events.clone()).when(exchange(1_000)).then_ok();
    given(events)
        .when(exchange(999))
        .then_err(DomainError::Unbalanced {
            field: "legs".into(),
            currency: cur("BTC"),
            debits: 1_000,
            credits: 999,
            scale: Some(8),
        });
}

#[test]
fn a_leg_in_the_wrong_currency_is_refused() {
    given(funded(100))
        .when(record(spec(
            2,
            vec![
                leg("assets:cash", Side::Debit, 5, "EUR"),
                leg("revenue:sales", Side::Credit, 5, "EUR"),
            ],
        )))
        .then_err(DomainError::CurrencyMismatch {
            field: "legs[0].currency".into(),
            account: code("assets:cash"),
            expected: cur("USD"),
            got: cur("EUR"),
        });
}

#[test]
fn a_leg_on_an_unknown_account_names_it() {
    given(funded(100))
        .when(record(spec(
            2,
            vec![debit("assets:cash", 5), credit("revenue:other", 5)],
        )))
        .then_err(DomainError::UnknownAccount {
            field: "legs[1].account".into(),
            code: code("revenue:other"),
        });
}

#[test]
fn a_frozen_account_refuses_postings() {
    let mut events = funded(100);
    events.push(Event::AccountFrozen {
        code: code("assets:cash"),
    });
    given(events)
        .when(sale(2, 5))
        .then_err(DomainError::AccountFrozen {
            field: "legs[0].account".into(),
            code: code("assets:cash"),
        });
}

#[test]
fn a_closed_account_refuses_postings() {
    let mut events = funded(100);
    events.push(Event::AccountClosed {
        code: code("revenue:sales"),
    });
    given(events)
        .when(sale(2, 5))
        .then_err(DomainError::AccountClosed {
            field: "legs[1].account".into(),
            code: code("revenue:sales"),
        });
}

#[test]
fn a_balance_may_not_cross_its_floor() {
    given(funded(100))
        .when(spend(2, 101))
        .then_err(DomainError::LimitExceeded {
            field: "legs[0].amount".into(),
            account: code("assets:cash"),
            kind: LimitKind::Floor,
            limit: 0,
            balance: Some(-1),
            scale: 2,
        });
    given(funded(100)).when(spend(2, 100)).then_ok();
}

/// `assets:cash` funded with 100, with a floor of zero and `ceiling`.
fn funded_below_a_ceiling(ceiling: i128) -> Vec<Event> {
    let mut events = funded(100);
    events.push(Event::AccountLimitsChanged {
        code: code("assets:cash"),
        limits: Limits::new(Some(0), Some(ceiling)).expect("valid"),
    });
    events
}

#[test]
fn a_balance_may_not_cross_its_ceiling() {
    given(funded_below_a_ceiling(150))
        .when(sale(2, 51))
        .then_err(DomainError::LimitExceeded {
            field: "legs[0].amount".into(),
            account: code("assets:cash"),
            kind: LimitKind::Ceiling,
            limit: 150,
            balance: Some(151),
            scale: 2,
        });
}

#[test]
fn a_limit_refusal_says_in_words_where_the_balance_would_go() {
    let events = funded_below_a_ceiling(500_000);
    let ceiling = given(events.clone())
        .when(sale(2, 519_900))
        .then_refusal_text();
    assert_eq!(
        ceiling,
        "legs[0].amount: would take assets:cash to 5,200.00, above its ceiling of 5,000.00"
    );
    let floor = given(events).when(spend(2, 101)).then_refusal_text();
    assert_eq!(
        floor,
        "legs[0].amount: would take the available balance of assets:cash to -0.01, below its floor of 0.00"
    );
    for text in [ceiling, floor] {
        assert!(!text.contains("Some("), "{text}");
        assert!(
            !text.contains("Ceiling") && !text.contains("Floor"),
            "{text}"
        );
    }
}

#[test]
fn refusals_name_statuses_in_words() {
    let mut events = funded(100);
    events.push(Event::AccountFrozen {
        code: code("assets:cash"),
    });
    let text = given(events)
        .when(CommandKind::FreezeAccount {
            code: code("assets:cash"),
        })
        .then_refusal_text();
    assert_eq!(
        text,
        "code: account assets:cash is frozen, which does not allow this"
    );
}

#[test]
fn amounts_that_overflow_are_refused_not_wrapped() {
    let huge = i128::MAX;
    let mut events = standard_accounts();
    events.push(posted(
        1,
        vec![debit("assets:cash", huge), credit("equity:capital", huge)],
    ));
    given(events)
        .when(sale(2, 1))
        .then_err(DomainError::AmountOverflow {
            field: "legs[0].amount".into(),
        });
    given(standard_accounts())
        .when(record(spec(
            2,
            vec![
                debit("assets:cash", huge),
                debit("revenue:sales", 1),
                credit("equity:capital", 1),
            ],
        )))
        .then_err(DomainError::AmountOverflow {
            field: "legs".into(),
        });
}

#[test]
fn descriptions_are_bounded() {
    let mut s = spec(2, vec![debit("assets:cash", 5), credit("revenue:sales", 5)]);
    s.description = "x".repeat(limits::MAX_DESCRIPTION_BYTES + 1);
    given(funded(100))
        .when(record(s))
        .then_err(DomainError::TooLong {
            field: "description".into(),
            max: limits::MAX_DESCRIPTION_BYTES,
        });
}

#[test]
fn a_repeated_transfer_takes_effect_once_and_answers_the_original_outcome() {
    let (ledger, _, first) = given(funded(100)).when(sale(2, 5)).then_ok();
    let (ledger, _, _) = Given { ledger }.when(sale(3, 7)).then_ok();
    let (after, events, again) = Given {
        ledger: ledger.clone(),
    }
    .when(sale(2, 5))
    .then_ok();
    assert!(events.is_empty());
    assert_eq!(after, ledger);
    assert_eq!(
        again, first,
        "the retry answers the balances of the first acceptance"
    );
}

#[test]
fn the_same_id_with_another_body_is_a_conflict() {
    let (ledger, _, _) = given(funded(100)).when(sale(2, 5)).then_ok();
    Given { ledger }
        .when(sale(2, 6))
        .then_err(DomainError::TransferIdConflict {
            field: "id".into(),
            id: id(2),
        });
}

// --- two-phase transfers ---------------------------------------------------------------------------

fn reserve(n: u128, amount: i128, timeout_secs: i64) -> CommandKind {
    record(pending_spec(
        n,
        vec![
            credit("assets:cash", amount),
            debit("equity:capital", amount),
        ],
        timeout_secs,
    ))
}

fn post(n: u128, amounts: Option<Vec<i128>>) -> CommandKind {
    CommandKind::PostPending(PostPending {
        id: id(n),
        amounts: amounts.map(|v| v.into_iter().map(amt).collect()),
        effective_at: None,
    })
}

#[test]
fn a_reservation_holds_available_balance_until_posted() {
    let (ledger, _, outcomes) = given(funded(100)).when(reserve(2, 30, 60)).then_ok();
    assert_eq!(outcomes[0].status, TransferStatus::Pending);
    assert_eq!(balance(&ledger, "assets:cash"), (100, -30, 70));
    Given {
        ledger: ledger.clone(),
    }
    .when(spend(3, 71))
    .then_err(DomainError::LimitExceeded {
        field: "legs[0].amount".into(),
        account: code("assets:cash"),
        kind: LimitKind::Floor,
        limit: 0,
        balance: Some(-1),
        scale: 2,
    });
    let (posted, _, outcomes) = Given { ledger }.when(post(2, None)).then_ok();
    assert_eq!(outcomes[0].status, TransferStatus::Posted);
    assert_eq!(balance(&posted, "assets:cash"), (70, 0, 70));
}

#[test]
fn a_partial_post_releases_the_rest() {
    let (ledger, _, _) = given(funded(100)).when(reserve(2, 30, 60)).then_ok();
    let (posted, _, _) = Given { ledger }.when(post(2, Some(vec![20, 20]))).then_ok();
    assert_eq!(balance(&posted, "assets:cash"), (80, 0, 80));
    assert_eq!(
        posted.transfer(&id(2)).and_then(|r| r.posted.clone()),
        Some(vec![amt(20), amt(20)])
    );
}

#[test]
fn a_partial_post_must_stay_balanced_and_within_the_reservation() {
    let (ledger, _, _) = given(funded(100)).when(reserve(2, 30, 60)).then_ok();
    Given {
        ledger: ledger.clone(),
    }
    .when(post(2, Some(vec![20, 21])))
    .then_err(DomainError::Unbalanced {
        field: "amounts".into(),
        currency: cur("USD"),
        debits: 21,
        credits: 20,
        scale: Some(2),
    });
    Given {
        ledger: ledger.clone(),
    }
    .when(post(2, Some(vec![31, 31])))
    .then_err(DomainError::PostExceedsPending {
        field: "amounts[0]".into(),
    });
    Given { ledger }
        .when(post(2, Some(vec![1])))
        .then_err(DomainError::PostAmountsMismatch {
            field: "amounts".into(),
            legs: 2,
            got: 1,
        });
}

#[test]
fn a_void_releases_the_reservation() {
    let (ledger, _, _) = given(funded(100)).when(reserve(2, 30, 60)).then_ok();
    let (voided, _, outcomes) = Given { ledger }
        .when(CommandKind::VoidPending { id: id(2) })
        .then_ok();
    assert_eq!(outcomes[0].status, TransferStatus::Voided);
    assert_eq!(balance(&voided, "assets:cash"), (100, 0, 100));
}

#[test]
fn only_a_pending_transfer_can_be_posted_or_voided() {
    let (ledger, _, _) = given(funded(100)).when(reserve(2, 30, 60)).then_ok();
    let (posted, _, _) = Given { ledger }.when(post(2, None)).then_ok();
    Given {
        ledger: posted.clone(),
    }
    .when(CommandKind::VoidPending { id: id(2) })
    .then_err(DomainError::TransferNotPending {
        field: "id".into(),
        id: id(2),
        status: TransferStatus::Posted,
    });
    Given { ledger: posted }
        .when(post(9, None))
        .then_err(DomainError::TransferNotFound {
            field: "id".into(),
            id: id(9),
        });
}

#[test]
fn an_expired_reservation_cannot_be_posted_and_is_released_by_expiry() {
    let (ledger, _, _) = given(funded(100))
        .when_at(reserve(2, 30, 60), t(100))
        .then_ok();
    Given {
        ledger: ledger.clone(),
    }
    .when_at(post(2, None), t(160))
    .then_err(DomainError::PendingExpired {
        field: "id".into(),
        id: id(2),
        expired_at: t(160),
    });
    Given {
        ledger: ledger.clone(),
    }
    .when_at(CommandKind::ExpirePending { id: id(2) }, t(159))
    .then_err(DomainError::PendingNotExpired {
        field: "id".into(),
        id: id(2),
        expires_at: t(160),
    });
    let (expired, _, outcomes) = Given { ledger }
        .when_at(CommandKind::ExpirePending { id: id(2) }, t(160))
        .then_ok();
    assert_eq!(outcomes[0].status, TransferStatus::Expired);
    assert_eq!(balance(&expired, "assets:cash"), (100, 0, 100));
}

#[test]
fn a_reservation_needs_a_bounded_timeout() {
    given(funded(100))
        .when(reserve(2, 30, 0))
        .then_err(DomainError::InvalidTimeout {
            field: "pending.timeout_secs".into(),
            max_secs: limits::MAX_PENDING_TIMEOUT_SECS,
        });
}

#[test]
fn posting_into_a_frozen_account_waits_but_voiding_does_not() {
    let (ledger, _, _) = given(funded(100)).when(reserve(2, 30, 60)).then_ok();
    let (frozen, _, _) = Given { ledger }
        .when(CommandKind::FreezeAccount {
            code: code("equity:capital"),
        })
        .then_ok();
    Given {
        ledger: frozen.clone(),
    }
    .when(post(2, None))
    .then_err(DomainError::AccountFrozen {
        field: "legs[1].account".into(),
        code: code("equity:capital"),
    });
    Given { ledger: frozen }
        .when(CommandKind::VoidPending { id: id(2) })
        .then_ok();
}

// --- corrections -----------------------------------------------------------------------------------

#[test]
fn a_reversal_mirrors_the_original_and_marks_it_reversed() {
    let (ledger, _, _) = given(funded(100)).when(sale(2, 40)).then_ok();
    let (reversed, events, outcomes) = Given { ledger }
        .when(CommandKind::ReverseTransfer(reversal(3, 2)))
        .then_ok();
    assert_eq!(balance(&reversed, "assets:cash"), (100, 0, 100));
    assert_eq!(balance(&reversed, "revenue:sales"), (0, 0, 0));
    assert_eq!(
        reversed.transfer(&id(2)).map(|r| r.status),
        Some(TransferStatus::Reversed)
    );
    assert_eq!(outcomes[0].transfer_id, id(3));
    let Event::TransferReversed { legs, .. } = &events[0] else {
        panic!("expected a reversal event, got {events:?}");
    };
    assert_eq!(
        legs,
        &vec![credit("assets:cash", 40), debit("revenue:sales", 40)]
    );
}

#[test]
fn a_transfer_is_reversed_at_most_once() {
    let (ledger, _, _) = given(funded(100)).when(sale(2, 40)).then_ok();
    let (reversed, _, _) = Given { ledger }
        .when(CommandKind::ReverseTransfer(reversal(3, 2)))
        .then_ok();
    Given { ledger: reversed }
        .when(CommandKind::ReverseTransfer(reversal(4, 2)))
        .then_err(DomainError::NotReversible {
            field: "original".into(),
            id: id(2),
            status: TransferStatus::Reversed,
        });
}

#[test]
fn a_reservation_cannot_be_reversed_only_voided() {
    let (ledger, _, _) = given(funded(100)).when(reserve(2, 30, 60)).then_ok();
    Given { ledger }
        .when(CommandKind::ReverseTransfer(reversal(3, 2)))
        .then_err(DomainError::NotReversible {
            field: "original".into(),
            id: id(2),
            status: TransferStatus::Pending,
        });
}

#[test]
fn a_reversal_respects_limits() {
    let (ledger, _, _) = given(funded(100)).when(spend(2, 100)).then_ok();
    // Reversing the funding would take the cash account below zero now that it has been spent.
    Given { ledger }
        .when(CommandKind::ReverseTransfer(reversal(3, 1)))
        .then_err(DomainError::LimitExceeded {
            field: "legs[0].amount".into(),
            account: code("assets:cash"),
            kind: LimitKind::Floor,
            limit: 0,
            balance: Some(-100),
            scale: 2,
        });
}

#[test]
fn reverse_and_rebook_is_atomic_and_linked() {
    let (ledger, _, _) = given(funded(100)).when(sale(2, 40)).then_ok();
    let rebook = spec(
        4,
        vec![debit("assets:cash", 45), credit("revenue:sales", 45)],
    );
    let command = CommandKind::ReverseAndRebook {
        reversal: reversal(3, 2),
        rebook: rebook.clone(),
    };
    let (after, events, outcomes) = Given {
        ledger: ledger.clone(),
    }
    .when(command.clone())
    .then_ok();
    assert_eq!(events.len(), 2);
    assert_eq!(outcomes.len(), 2);
    assert_eq!(balance(&after, "revenue:sales"), (45, 0, 45));
    let Event::TransferPosted { correction, .. } = &events[1] else {
        panic!("expected the rebook, got {events:?}");
    };
    assert_eq!(
        correction,
        &Some(Correction {
            of: id(2),
            reversal: id(3),
            reason: reason("wrong_amount"),
        })
    );
    // A retry of the whole correction is a duplicate; the same reversal id with another rebook is not.
    let (again, none, _) = Given {
        ledger: after.clone(),
    }
    .when(command)
    .then_ok();
    assert!(none.is_empty());
    assert_eq!(again, after);
    Given { ledger: after }
        .when(CommandKind::ReverseAndRebook {
            reversal: reversal(3, 2),
            rebook: spec(
                4,
                vec![debit("assets:cash", 46), credit("revenue:sales", 46)],
            ),
        })
        .then_err(DomainError::TransferIdConflict {
            field: "reversal.id".into(),
            id: id(3),
        });

    // When the rebook is refused, so is the reversal.
    Given { ledger }
        .when(CommandKind::ReverseAndRebook {
            reversal: reversal(3, 2),
            rebook: spec(
                4,
                vec![debit("assets:cash", 45), credit("revenue:nope", 45)],
            ),
        })
        .then_err(DomainError::UnknownAccount {
            field: "rebook.legs[1].account".into(),
            code: code("revenue:nope"),
        });
}

#[test]
fn a_rebook_is_a_posting_with_its_own_id() {
    let (ledger, _, _) = given(funded(100)).when(sale(2, 40)).then_ok();
    Given {
        ledger: ledger.clone(),
    }
    .when(CommandKind::ReverseAndRebook {
        reversal: reversal(3, 2),
        rebook: spec(
            3,
            vec![debit("assets:cash", 45), credit("revenue:sales", 45)],
        ),
    })
    .then_err(DomainError::TransferIdReused {
        field: "rebook.id".into(),
        id: id(3),
    });
    Given { ledger }
        .when(CommandKind::ReverseAndRebook {
            reversal: reversal(3, 2),
            rebook: pending_spec(
                4,
                vec![debit("assets:cash", 45), credit("revenue:sales", 45)],
                60,
            ),
        })
        .then_err(DomainError::RebookCannotBePending {
            field: "rebook.pending".into(),
        });
}

// --- periods ---------------------------------------------------------------------------------------

fn backdated(n: u128, amount: i128, at: i64) -> CommandKind {
    let mut s = spec(
        n,
        vec![
            debit("assets:cash", amount),
            credit("revenue:sales", amount),
        ],
    );
    s.effective_at = Some(t(at));
    record(s)
}

#[test]
fn nothing_may_be_effective_inside_a_closed_period() {
    let (closed, _, _) = given(funded(100))
        .when(CommandKind::ClosePeriod { through: t(50) })
        .then_ok();
    Given {
        ledger: closed.clone(),
    }
    .when(backdated(2, 5, 50))
    .then_err(DomainError::PeriodClosed {
        field: "effective_at".into(),
        effective_at: t(50),
        closed_through: t(50),
    });
    Given {
        ledger: closed.clone(),
    }
    .when(backdated(2, 5, 51))
    .then_ok();
    // A correction of a transfer inside the closed period is booked in the open period.
    let (reversed, _, _) = Given { ledger: closed }
        .when(CommandKind::ReverseTransfer(reversal(3, 1)))
        .then_ok();
    assert_eq!(
        reversed.transfer(&id(3)).map(|r| r.effective_at),
        Some(t(100))
    );
}

#[test]
fn periods_close_forward_and_not_in_the_future() {
    let (closed, _, _) = given(funded(100))
        .when(CommandKind::ClosePeriod { through: t(50) })
        .then_ok();
    Given { ledger: closed }
        .when(CommandKind::ClosePeriod { through: t(40) })
        .then_err(DomainError::PeriodAlreadyClosed {
            field: "through".into(),
            closed_through: t(50),
        });
    given(funded(100))
        .when(CommandKind::ClosePeriod { through: t(101) })
        .then_err(DomainError::PeriodInFuture {
            field: "through".into(),
        });
}

// --- batches ---------------------------------------------------------------------------------------

#[test]
fn an_atomic_batch_is_refused_whole_with_the_index_of_the_refusal() {
    let ledger = given(funded(100)).ledger;
    let commands = vec![
        Command::new(spend(2, 60), t(100)),
        Command::new(spend(3, 60), t(100)),
    ];
    let refused = decide_all(&ledger, &commands);
    assert!(
        matches!(refused, Err((1, DomainError::LimitExceeded { .. }))),
        "{refused:?}"
    );
    let accepted = decide_all(&ledger, &commands[..1]).expect("first alone fits");
    assert_eq!(accepted.len(), 1);
}
