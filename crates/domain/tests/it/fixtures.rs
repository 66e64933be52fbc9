//! Given / when / then helpers and small constructors that keep the tests readable.

use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use tally_domain::*;
use uuid::Uuid;

pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0)
        .single()
        .expect("valid timestamp")
}

pub fn code(s: &str) -> AccountCode {
    AccountCode::parse(s).expect("valid account code")
}

pub fn cur(s: &str) -> CurrencyCode {
    CurrencyCode::parse(s).expect("valid currency code")
}

pub fn amt(v: i128) -> Amount {
    Amount::new(v).expect("positive amount")
}

pub fn id(n: u128) -> TransferId {
    TransferId(Uuid::from_u128(n))
}

pub fn reason(s: &str) -> ReasonCode {
    ReasonCode::parse(s).expect("valid reason")
}

pub fn debit(account: &str, amount: i128) -> LegSpec {
    leg(account, Side::Debit, amount, "USD")
}

pub fn credit(account: &str, amount: i128) -> LegSpec {
    leg(account, Side::Credit, amount, "USD")
}

pub fn leg(account: &str, side: Side, amount: i128, currency: &str) -> LegSpec {
    LegSpec {
        account: code(account),
        side,
        amount: amt(amount),
        currency: cur(currency),
    }
}

pub fn spec(n: u128, legs: Vec<LegSpec>) -> TransferSpec {
    TransferSpec {
        id: id(n),
        legs,
        effective_at: None,
        description: String::new(),
        metadata: Metadata::default(),
        pending: None,
    }
}

pub fn pending_spec(n: u128, legs: Vec<LegSpec>, timeout_secs: i64) -> TransferSpec {
    TransferSpec {
        pending: Some(PendingSpec { timeout_secs }),
        ..spec(n, legs)
    }
}

pub fn ledger_created() -> Event {
    Event::LedgerCreated {
        name: "main".into(),
        created_at: t(0),
    }
}

pub fn opened(
    account: &str,
    account_type: AccountType,
    currency: &str,
    scale: u8,
    floor: Option<i128>,
) -> Event {
    Event::AccountOpened {
        code: code(account),
        account_type,
        currency: Currency::new(cur(currency), scale).expect("valid currency"),
        limits: Limits::new(floor, None).expect("valid limits"),
        metadata: Metadata::default(),
    }
}

/// A ledger with `assets:cash` (may not go below zero), `equity:capital` and `revenue:sales`, all USD.
pub fn standard_accounts() -> Vec<Event> {
    vec![
        ledger_created(),
        opened("assets:cash", AccountType::Asset, "USD", 2, Some(0)),
        opened("equity:capital", AccountType::Equity, "USD", 2, None),
        opened("revenue:sales", AccountType::Revenue, "USD", 2, None),
    ]
}

pub fn posted(n: u128, legs: Vec<LegSpec>) -> Event {
    Event::TransferPosted {
        transfer: spec(n, legs),
        recorded_at: t(10),
        correction: None,
        balances: Vec::new(),
    }
}

/// `assets:cash` funded with `amount` from `equity:capital`.
pub fn funded(amount: i128) -> Vec<Event> {
    let mut events = standard_accounts();
    events.push(posted(
        1,
        vec![
            debit("assets:cash", amount),
            credit("equity:capital", amount),
        ],
    ));
    events
}

pub fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    Metadata::parse(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
    .expect("valid metadata")
}

pub struct Given {
    pub ledger: Ledger,
}

pub fn given(events: impl IntoIterator<Item = Event>) -> Given {
    let mut ledger = Ledger::default();
    for e in events {
        apply(&mut ledger, &e);
    }
    Given { ledger }
}

pub struct Then {
    pub before: Ledger,
    pub command: Command,
    pub result: Result<Vec<Event>, DomainError>,
}

impl Given {
    pub fn when(self, kind: CommandKind) -> Then {
        self.when_at(kind, t(100))
    }

    pub fn when_at(self, kind: CommandKind, at: DateTime<Utc>) -> Then {
        let command = Command::new(kind, at);
        let result = decide(&self.ledger, &command);
        Then {
            before: self.ledger,
            command,
            result,
        }
    }
}

impl Then {
    #[track_caller]
    pub fn then_err(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    /// Asserts the command was refused and returns the refusal's words, as a client reads them.
    #[track_caller]
    pub fn then_refusal_text(self) -> String {
        match self.result {
            Err(e) => e.to_string(),
            Ok(events) => panic!("expected a refusal, got {events:?}"),
        }
    }

    /// Asserts the command was accepted and returns the ledger after its events.
    #[track_caller]
    pub fn then_ok(self) -> (Ledger, Vec<Event>, Vec<TransferOutcome>) {
        let events = match self.result {
            Ok(events) => events,
            Err(e) => panic!("expected the command to be accepted, got {e:?}"),
        };
        let mut ledger = self.before;
        for e in &events {
            apply(&mut ledger, e);
        }
        let outcomes = ledger.outcomes(&self.command.kind);
        (ledger, events, outcomes)
    }

    #[track_caller]
    pub fn then_events(self, expected: Vec<Event>) {
        assert_eq!(self.result, Ok(expected));
    }
}

#[track_caller]
pub fn balance(ledger: &Ledger, account: &str) -> (i128, i128, i128) {
    let acc = ledger.account(&code(account)).expect("account exists");
    let b = AccountBalance::of(acc);
    (b.posted, b.pending, b.available)
}
