//! Transfer ids take effect once, forever, across writer instances and restarts.

use crate::fixtures::*;
use sqlx::PgPool;
use tally_domain::*;
use tally_eventstore::EventStore;
use tally_writer::{WriterConfig, Writers};
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
