//! Appending to several streams in one transaction: each stream gets its own outcome.

use sqlx::PgPool;
use tally_eventstore::{EventStore, StoreError, StreamAppend, VerifyReport};
use uuid::Uuid;

use crate::support::*;

#[track_caller]
fn intact(report: VerifyReport, expected: i64) {
    assert!(
        matches!(report, VerifyReport::Intact { version, .. } if version == expected),
        "{report:?}"
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_conflicting_stream_does_not_stop_the_others_of_its_group(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(2)).await;
    append(&store, "ledger-b", 0, &events(1)).await;
    let (a, b, c) = (events(3), events(2), events(1));
    let results = store
        .append_many(&[
            StreamAppend {
                stream_id: "ledger-b",
                expected_version: 1,
                events: &b,
                expected_head: None,
            },
            // Stale: another writer moved ledger-a to 2.
            StreamAppend {
                stream_id: "ledger-a",
                expected_version: 1,
                events: &a,
                expected_head: None,
            },
            StreamAppend {
                stream_id: "ledger-c",
                expected_version: 0,
                events: &c,
                expected_head: None,
            },
        ])
        .await
        .expect("the group commits");
    assert_eq!(results[0].as_ref().map(|r| r.version).ok(), Some(3));
    assert!(
        matches!(
            results[1],
            Err(StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().map(|r| r.version).ok(), Some(1));
    intact(store.verify_stream("ledger-a").await.expect("verify"), 2);
    intact(store.verify_stream("ledger-b").await.expect("verify"), 3);
    intact(store.verify_stream("ledger-c").await.expect("verify"), 1);
    // The heads moved once each, in one transaction.
    let transactions: i64 = sqlx::query_scalar(
        "select count(distinct tx) from events where (stream_id = 'ledger-b' and version > 1) \
         or stream_id = 'ledger-c'",
    )
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(transactions, 1);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_recorded_transfer_in_one_stream_fails_only_that_stream(pool: PgPool) {
    let store = EventStore::new(pool);
    let id = Uuid::new_v4();
    append(&store, "ledger-a", 0, &[transfer(id)]).await;
    let again = [event(1), transfer(id)];
    let fresh = events(2);
    let results = store
        .append_many(&[
            StreamAppend {
                stream_id: "ledger-a",
                expected_version: 1,
                events: &again,
                expected_head: None,
            },
            StreamAppend {
                stream_id: "ledger-b",
                expected_version: 0,
                events: &fresh,
                expected_head: None,
            },
        ])
        .await
        .expect("answered");
    assert!(
        matches!(&results[0], Err(StoreError::DuplicateTransfer { transfer_id, .. }) if *transfer_id == id),
        "{:?}",
        results[0]
    );
    assert_eq!(results[1].as_ref().map(|r| r.version).ok(), Some(2));
    intact(store.verify_stream("ledger-a").await.expect("verify"), 1);
    intact(store.verify_stream("ledger-b").await.expect("verify"), 2);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_head_moved_by_another_process_is_chained_correctly(pool: PgPool) {
    // Two stores share the database but not their remembered heads.
    let first = EventStore::new(pool.clone());
    let second = EventStore::new(pool);
    append(&first, "ledger-a", 0, &events(2)).await;
    append(&second, "ledger-a", 2, &events(1)).await;
    // `first` remembers the head at version 2; the stream is at 3 now.
    let err = first.append("ledger-a", 2, &events(1)).await;
    assert!(
        matches!(err, Err(StoreError::Conflict { actual: 3, .. })),
        "{err:?}"
    );
    assert_eq!(append(&first, "ledger-a", 3, &events(2)).await.version, 5);
    append(&second, "ledger-a", 5, &events(1)).await;
    let more = events(2);
    let results = first
        .append_many(&[StreamAppend {
            stream_id: "ledger-a",
            expected_version: 6,
            events: &more,
            expected_head: None,
        }])
        .await
        .expect("answered");
    assert_eq!(results[0].as_ref().map(|r| r.version).ok(), Some(8));
    intact(first.verify_stream("ledger-a").await.expect("verify"), 8);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_stream_named_twice_is_appended_twice_in_order(pool: PgPool) {
    let store = EventStore::new(pool);
    let (one, two) = (events(2), events(1));
    let results = store
        .append_many(&[
            StreamAppend {
                stream_id: "ledger-a",
                expected_version: 0,
                events: &one,
                expected_head: None,
            },
            StreamAppend {
                stream_id: "ledger-a",
                expected_version: 2,
                events: &two,
                expected_head: None,
            },
        ])
        .await
        .expect("answered");
    assert_eq!(results[0].as_ref().map(|r| r.version).ok(), Some(2));
    assert_eq!(results[1].as_ref().map(|r| r.version).ok(), Some(3));
    intact(store.verify_stream("ledger-a").await.expect("verify"), 3);
}

/// Asserts that a chained append was refused as a conflict between these versions.
#[track_caller]
fn refused(
    outcome: &Result<tally_eventstore::AppendResult, StoreError>,
    expected: i64,
    actual: i64,
) {
    assert!(
        matches!(outcome, Err(StoreError::Conflict { expected: e, actual: a, .. }) if *e == expected && *a == actual),
        "{outcome:?}"
    );
}

/// Three events chained on `first`, sent from a task of their own so the test can commit or roll back
/// `first`'s transaction meanwhile.
fn spawn_chained(
    store: &EventStore,
    first: &tally_eventstore::AppendResult,
) -> tokio::task::JoinHandle<Result<tally_eventstore::AppendResult, StoreError>> {
    let (store, version, head) = (store.clone(), first.version, first.head_hash);
    tokio::spawn(async move { chained(&store, "ledger-a", version, head, &events(3)).await })
}

/// An append of `events` to `stream_id` chained on `head` at `expected`, as a pipelining writer sends it.
async fn chained(
    store: &EventStore,
    stream_id: &str,
    expected: i64,
    head: [u8; 32],
    events: &[tally_eventstore::NewEvent],
) -> Result<tally_eventstore::AppendResult, StoreError> {
    let mut results = store
        .append_many(&[StreamAppend {
            stream_id,
            expected_version: expected,
            events,
            expected_head: Some(head),
        }])
        .await
        .expect("the group's transaction runs");
    results.pop().expect("one outcome")
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_batch_chained_on_a_head_that_never_committed_is_refused_though_the_version_matches(
    pool: PgPool,
) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(1)).await;
    // The predecessor appends two events and rolls back: its head never existed for anyone else.
    let mut tx = store.pool().begin().await.expect("begin");
    let lost = tally_eventstore::append_in_tx(&mut tx, "ledger-a", 1, &events(2))
        .await
        .expect("appended inside the transaction");
    tx.rollback().await.expect("rollback");
    // Another process fills the same versions with other events.
    append(&store, "ledger-a", 1, &events(2)).await;
    let outcome = chained(&store, "ledger-a", lost.version, lost.head_hash, &events(1)).await;
    refused(&outcome, 3, 3);
    intact(store.verify_stream("ledger-a").await.expect("verify"), 3);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_chained_batch_waits_for_its_predecessor_and_commits_after_it(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(1)).await;
    let mut tx = store.pool().begin().await.expect("begin");
    let first = tally_eventstore::append_in_tx(&mut tx, "ledger-a", 1, &events(2))
        .await
        .expect("appended inside the transaction");
    let next = spawn_chained(&store, &first);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !next.is_finished(),
        "the chained batch waits for the head's lock"
    );
    tx.commit().await.expect("commit");
    let result = next
        .await
        .expect("task")
        .expect("the chained batch commits");
    assert_eq!(result.version, 6);
    intact(store.verify_stream("ledger-a").await.expect("verify"), 6);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_chained_batch_fails_when_its_predecessor_rolls_back(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(1)).await;
    let mut tx = store.pool().begin().await.expect("begin");
    let first = tally_eventstore::append_in_tx(&mut tx, "ledger-a", 1, &events(2))
        .await
        .expect("appended inside the transaction");
    let next = spawn_chained(&store, &first);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.rollback().await.expect("rollback");
    let outcome = next.await.expect("task");
    refused(&outcome, 3, 1);
    intact(store.verify_stream("ledger-a").await.expect("verify"), 1);
}

/// A transaction that has announced (`tally_announce`) the head it will leave at version 3 of ledger-a
/// but not sent its events yet, and what that head will be: the same events appended and rolled back.
async fn announced_predecessor(
    store: &EventStore,
    first: &[tally_eventstore::NewEvent],
) -> (
    sqlx::Transaction<'static, sqlx::Postgres>,
    tally_eventstore::AppendResult,
) {
    let mut probe = store.pool().begin().await.expect("begin");
    let promised = tally_eventstore::append_in_tx(&mut probe, "ledger-a", 1, first)
        .await
        .expect("appended inside the probe");
    probe.rollback().await.expect("rollback");
    let mut tx = store.pool().begin().await.expect("begin");
    sqlx::query("select tally_announce(array['ledger-a'], array[3::bigint])")
        .execute(&mut *tx)
        .await
        .expect("announced");
    (tx, promised)
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_batch_chained_on_an_announced_head_waits_for_it_even_before_its_events_arrive(
    pool: PgPool,
) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(1)).await;
    let first = events(2);
    let (mut tx, promised) = announced_predecessor(&store, &first).await;
    let next = spawn_chained(&store, &promised);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !next.is_finished(),
        "the chained batch waits for the announcing transaction, though the head is still at 1"
    );
    let appended = tally_eventstore::append_in_tx(&mut tx, "ledger-a", 1, &first)
        .await
        .expect("the predecessor appends");
    assert_eq!(appended.head_hash, promised.head_hash);
    tx.commit().await.expect("commit");
    let result = next
        .await
        .expect("task")
        .expect("the chained batch commits after its predecessor");
    assert_eq!(result.version, 6);
    intact(store.verify_stream("ledger-a").await.expect("verify"), 6);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_batch_chained_on_an_announced_head_fails_when_the_announcer_rolls_back(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(1)).await;
    let (tx, promised) = announced_predecessor(&store, &events(2)).await;
    let next = spawn_chained(&store, &promised);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.rollback().await.expect("rollback");
    let outcome = next.await.expect("task");
    refused(&outcome, 3, 1);
    intact(store.verify_stream("ledger-a").await.expect("verify"), 1);
}
