//! Transfer ids take effect once, forever, across writer instances and restarts.

use crate::fixtures::*;
use sqlx::PgPool;
use tally_domain::*;
use tally_eventstore::EventStore;
use tally_writer::{Accepted, ItemResult, WriterConfig, Writers};
use uuid::Uuid;

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_retry_answers_the_original_outcome_even_after_a_restart(pool: PgPool) {
    let store = EventStore::new(pool);
    let writers = setup(&store, WriterConfig::default()).await;
    let ledger = main_ledger();
    let id = Uuid::from_u128(42);
    let first = accepted(
        writers
            .submit(&ledger, sub(transfer(id, "equity:capital", "assets:a", 10)))
            .await,
    );
    accepted(
        writers
            .submit(
                &ledger,
                sub(transfer(
                    Uuid::from_u128(43),
                    "equity:capital",
                    "assets:a",
                    5,
                )),
            )
            .await,
    );
    writers.shutdown().await;

    // A new process, with nothing cached.
    let restarted = Writers::new(store.clone(), WriterConfig::default());
    let again = accepted(
        restarted
            .submit(&ledger, sub(transfer(id, "equity:capital", "assets:a", 10)))
            .await,
    );
    assert!(again.duplicate);
    assert_eq!(again.outcomes, first.outcomes);
    let conflict = restarted
        .submit(&ledger, sub(transfer(id, "equity:capital", "assets:a", 11)))
        .await
        .expect("answered");
    assert_eq!(
        conflict,
        Err(DomainError::TransferIdConflict {
            field: "id".into(),
            id: TransferId(id),
        })
    );
    assert_eq!(replay(&store, &ledger).await.version, 6);
    restarted.shutdown().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn commands_for_a_ledger_that_does_not_exist_are_refused(pool: PgPool) {
    let store = EventStore::new(pool);
    let writers = Writers::new(store.clone(), WriterConfig::default());
    let nowhere = LedgerId::parse("nowhere").expect("valid");
    let answer = writers
        .submit(
            &nowhere,
            sub(transfer(
                Uuid::from_u128(1),
                "equity:capital",
                "assets:a",
                1,
            )),
        )
        .await
        .expect("answered");
    assert_eq!(answer, Err(DomainError::LedgerNotFound));
    assert!(
        store
            .read_stream("nowhere", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
    writers.shutdown().await;
}

fn reversal(id: u128, original: u128) -> ReversalSpec {
    ReversalSpec {
        id: TransferId(Uuid::from_u128(id)),
        original: TransferId(Uuid::from_u128(original)),
        reason: ReasonCode::parse("wrong_amount").expect("valid"),
        effective_at: None,
    }
}

fn already_reversed(original: u128) -> DomainError {
    DomainError::NotReversible {
        field: "original".into(),
        id: TransferId(Uuid::from_u128(original)),
        status: TransferStatus::Reversed,
    }
}

fn refused(result: Result<ItemResult, tally_writer::WriteError>) -> DomainError {
    match result {
        Ok(Err(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The writer keeps only recent settled transfers in memory (and snapshots none): older ones are recalled
/// from their events, with their changes, whenever a command names them, in the same process or after a
/// restart, and every answer is the one a writer holding everything would give.
#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn forgotten_transfers_are_recalled_with_their_answers_and_changes(pool: PgPool) {
    let store = EventStore::new(pool);
    let config = WriterConfig {
        keep_transfers: 1,
        snapshot_every: 5,
        ..WriterConfig::default()
    };
    let writers = setup(&store, config.clone()).await;
    let ledger = main_ledger();
    let first_transfer = || transfer(Uuid::from_u128(1), "equity:capital", "assets:a", 10);
    let send = |kind: CommandKind| writers.submit(&ledger, sub(kind));
    let first = accepted(send(first_transfer()).await);
    accepted(
        send(transfer(
            Uuid::from_u128(2),
            "equity:capital",
            "assets:a",
            7,
        ))
        .await,
    );
    let CommandKind::RecordTransfer(mut pending) =
        transfer(Uuid::from_u128(3), "equity:capital", "assets:b", 4)
    else {
        unreachable!("a transfer")
    };
    pending.pending = Some(PendingSpec { timeout_secs: 600 });
    accepted(send(CommandKind::RecordTransfer(pending)).await);
    accepted(
        send(CommandKind::VoidPending {
            id: TransferId(Uuid::from_u128(3)),
        })
        .await,
    );
    let CommandKind::RecordTransfer(rebook) =
        transfer(Uuid::from_u128(5), "equity:capital", "assets:a", 8)
    else {
        unreachable!("a transfer")
    };
    let correction = CommandKind::ReverseAndRebook {
        reversal: reversal(4, 2),
        rebook,
    };
    let corrected = accepted(send(correction.clone()).await);
    // Enough later transfers that every one above is forgotten and a snapshot is taken after them.
    for n in 100..200u128 {
        accepted(
            send(transfer(
                Uuid::from_u128(n),
                "equity:capital",
                "assets:b",
                1,
            ))
            .await,
        );
    }

    let check = |again: Accepted, original: &Accepted| {
        assert!(again.duplicate);
        assert_eq!(&again.outcomes, &original.outcomes);
    };
    // In the same process: a retry is refused by the store's key, recalled and answered as before.
    check(accepted(send(first_transfer()).await), &first);
    check(accepted(send(correction.clone()).await), &corrected);
    assert_eq!(
        refused(send(CommandKind::ReverseTransfer(reversal(6, 2))).await),
        already_reversed(2)
    );
    assert_eq!(
        refused(
            send(CommandKind::VoidPending {
                id: TransferId(Uuid::from_u128(3)),
            })
            .await
        ),
        DomainError::TransferNotPending {
            field: "id".into(),
            id: TransferId(Uuid::from_u128(3)),
            status: TransferStatus::Voided,
        }
    );
    let reversed = accepted(send(CommandKind::ReverseTransfer(reversal(7, 1))).await);
    assert_eq!(reversed.outcomes[0].status, TransferStatus::Posted);
    writers.shutdown().await;

    // A new process starts from a snapshot that holds no settled transfer.
    let snapshot = latest_snapshot(&store).await;
    assert!(snapshot.version > 100, "snapshot at {}", snapshot.version);
    assert_eq!(snapshot.state["transfers"], serde_json::json!({}));
    let restarted = Writers::new(store.clone(), config);
    let send = |kind: CommandKind| restarted.submit(&ledger, sub(kind));
    check(accepted(send(first_transfer()).await), &first);
    assert_eq!(
        refused(
            send(transfer(
                Uuid::from_u128(1),
                "equity:capital",
                "assets:a",
                11
            ))
            .await
        ),
        DomainError::TransferIdConflict {
            field: "id".into(),
            id: TransferId(Uuid::from_u128(1)),
        }
    );
    // The reversal above changed transfer 1, and the recall sees it.
    assert_eq!(
        refused(send(CommandKind::ReverseTransfer(reversal(8, 1))).await),
        already_reversed(1)
    );
    check(accepted(send(correction).await), &corrected);
    restarted.shutdown().await;

    // Nothing took effect twice: 4 setup events, 6 above, 100 fillers and one reversal.
    let replayed = replay(&store, &ledger).await;
    assert_eq!(replayed.version, 4 + 6 + 100 + 1);
}
