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
            },
            // Stale: another writer moved ledger-a to 2.
            StreamAppend {
                stream_id: "ledger-a",
                expected_version: 1,
                events: &a,
            },
            StreamAppend {
                stream_id: "ledger-c",
                expected_version: 0,
                events: &c,
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
            },
            StreamAppend {
                stream_id: "ledger-b",
                expected_version: 0,
                events: &fresh,
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
            },
            StreamAppend {
                stream_id: "ledger-a",
                expected_version: 2,
                events: &two,
            },
        ])
        .await
        .expect("answered");
    assert_eq!(results[0].as_ref().map(|r| r.version).ok(), Some(2));
    assert_eq!(results[1].as_ref().map(|r| r.version).ok(), Some(3));
    intact(store.verify_stream("ledger-a").await.expect("verify"), 3);
}
