//! The versions callers resolve from the store: a stream's head, what was known at an instant, and the
//! version an append of given transfers reached.

use chrono::{Duration, TimeZone, Utc};
use sqlx::PgPool;
use tally_eventstore::EventStore;
use uuid::Uuid;

use crate::support::{append, event, events, transfer};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_head_version_is_the_last_appended_and_zero_for_an_unknown_stream(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    append(&store, "ledger-a", 0, &events(3)).await;

    let head = EventStore::head_version(&pool, "ledger-a")
        .await
        .expect("head");
    let unknown = EventStore::head_version(&pool, "ledger-b")
        .await
        .expect("head");

    assert_eq!(head, 3);
    assert_eq!(unknown, 0);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_head_version_reads_in_the_callers_transaction(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    append(&store, "ledger-a", 0, &events(2)).await;
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await
        .expect("isolation");
    let before = EventStore::head_version(&mut *tx, "ledger-a")
        .await
        .expect("head");

    append(&store, "ledger-a", 2, &events(1)).await;
    let inside = EventStore::head_version(&mut *tx, "ledger-a")
        .await
        .expect("head");
    tx.rollback().await.expect("rollback");
    let after = EventStore::head_version(&pool, "ledger-a")
        .await
        .expect("head");

    assert_eq!((before, inside, after), (2, 2, 3));
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_version_known_at_an_instant_is_the_last_recorded_by_then(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let start = Utc
        .with_ymd_and_hms(2026, 4, 5, 12, 0, 0)
        .single()
        .expect("a valid instant");
    let at = |minutes| start + Duration::minutes(minutes);
    let stamped = |minutes| {
        let mut e = event(minutes);
        e.recorded_at = at(minutes);
        e
    };
    append(&store, "ledger-a", 0, &[stamped(0), stamped(10)]).await;
    append(&store, "ledger-a", 2, &[stamped(20)]).await;

    let known = |instant| EventStore::version_known_at(&pool, "ledger-a", instant);

    assert_eq!(known(at(-1)).await.expect("known"), 0);
    assert_eq!(known(at(0)).await.expect("known"), 1);
    assert_eq!(known(at(15)).await.expect("known"), 2);
    assert_eq!(known(at(20)).await.expect("known"), 3);
    assert_eq!(known(at(60)).await.expect("known"), 3);
    let other = EventStore::version_known_at(&pool, "ledger-b", at(60)).await;
    assert_eq!(other.expect("known"), 0);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_latest_version_of_transfers_is_that_of_the_last_one_created(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let (first, second, absent) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    append(&store, "ledger-a", 0, &[event(1), transfer(first)]).await;
    append(
        &store,
        "ledger-a",
        2,
        &[event(3), transfer(second), event(5)],
    )
    .await;
    append(&store, "ledger-b", 0, &[transfer(absent)]).await;

    let pool = &pool;
    let latest = |ids: Vec<Uuid>| async move {
        EventStore::latest_version_of_transfers(pool, "ledger-a", &ids)
            .await
            .expect("latest")
    };

    assert_eq!(latest(vec![first]).await, Some(2));
    assert_eq!(latest(vec![first, second]).await, Some(4));
    assert_eq!(
        latest(vec![absent]).await,
        None,
        "another stream's transfer"
    );
    assert_eq!(latest(vec![]).await, None);
}
