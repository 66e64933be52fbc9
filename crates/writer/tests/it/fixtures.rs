//! Commands and setup shared by the writer tests.

use std::collections::BTreeMap;
use tally_domain::*;
use tally_eventstore::{EventMetadata, EventStore};
use tally_writer::{Accepted, Submission, WriterConfig, Writers};
use uuid::Uuid;

pub fn meta() -> EventMetadata {
    EventMetadata {
        actor: "tester".into(),
        client: "writer-tests".into(),
        correlation_id: Some("req-1".into()),
        causation_id: None,
        traceparent: None,
    }
}

pub fn sub(kind: CommandKind) -> Submission {
    Submission {
        kind,
        metadata: meta(),
    }
}

pub fn main_ledger() -> LedgerId {
    LedgerId::parse("main").expect("valid ledger id")
}

pub fn code(s: &str) -> AccountCode {
    AccountCode::parse(s).expect("valid code")
}

pub fn open(account: &str, account_type: AccountType, floor: Option<i128>) -> CommandKind {
    CommandKind::OpenAccount {
        code: code(account),
        account_type,
        currency: Currency::new(CurrencyCode::parse("USD").expect("valid"), 2).expect("valid"),
        limits: Limits::new(floor, None).expect("valid"),
        metadata: Metadata::parse(BTreeMap::new()).expect("empty"),
    }
}

pub fn transfer(id: Uuid, from: &str, to: &str, amount: i128) -> CommandKind {
    let usd = CurrencyCode::parse("USD").expect("valid");
    CommandKind::RecordTransfer(TransferSpec {
        id: TransferId(id),
        legs: vec![
            LegSpec {
                account: code(from),
                side: Side::Credit,
                amount: Amount::new(amount).expect("positive"),
                currency: usd.clone(),
            },
            LegSpec {
                account: code(to),
                side: Side::Debit,
                amount: Amount::new(amount).expect("positive"),
                currency: usd,
            },
        ],
        effective_at: None,
        description: "test".into(),
        metadata: Metadata::default(),
        pending: None,
    })
}

#[track_caller]
pub fn accepted(
    result: Result<Result<Accepted, DomainError>, tally_writer::WriteError>,
) -> Accepted {
    match result {
        Ok(Ok(a)) => a,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

/// A ledger `main` with `equity:capital` (unbounded) and two asset accounts that may not go negative.
pub async fn setup(store: &EventStore, config: WriterConfig) -> Writers {
    let writers = Writers::new(store.clone(), config);
    let ledger = main_ledger();
    for kind in [
        CommandKind::CreateLedger {
            name: "Main".into(),
        },
        open("equity:capital", AccountType::Equity, None),
        open("assets:a", AccountType::Asset, Some(0)),
        open("assets:b", AccountType::Asset, Some(0)),
    ] {
        accepted(writers.submit(&ledger, sub(kind)).await);
    }
    writers
}

/// The main ledger's newest snapshot, which the test expects to exist.
pub async fn latest_snapshot(store: &EventStore) -> tally_eventstore::Snapshot {
    store
        .latest_snapshot(main_ledger().as_str())
        .await
        .expect("read")
        .expect("a snapshot exists")
}

/// The ledger folded from the whole stream, without snapshots.
pub async fn replay(store: &EventStore, ledger: &LedgerId) -> Ledger {
    let mut state = Ledger::default();
    let mut after = 0;
    loop {
        let page = store
            .read_stream(ledger.as_str(), after, 1_000)
            .await
            .expect("read stream");
        if page.is_empty() {
            return state;
        }
        for e in page {
            assert_eq!(e.version, after + 1, "versions are dense");
            after = e.version;
            let envelope = Envelope {
                event_type: &e.event_type,
                schema_version: e.schema_version,
                recorded_at: e.recorded_at,
            };
            apply(
                &mut state,
                &Event::decode(envelope, e.payload).expect("decodes"),
            );
        }
    }
}
