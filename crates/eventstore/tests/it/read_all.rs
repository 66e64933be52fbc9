//! The global log: paging, and never skipping an event that commits late.

use sqlx::PgPool;
use tally_eventstore::{EventStore, StoreError, append_in_tx, claim_log};

use crate::support::{append, events, read_all_at_least};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_log_pages_from_a_cursor_and_keeps_each_stream_in_version_order(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(3)).await;
    append(&store, "ledger-b", 0, &events(2)).await;
    append(&store, "ledger-a", 3, &events(1)).await;

    let all = read_all_at_least(&store, 0, 6).await;
    assert_eq!(all.len(), 6);
    let versions_of = |stream: &str| -> Vec<i64> {
        all.iter()
            .filter(|e| e.stream_id == stream)
            .map(|e| e.version)
            .collect()
    };
    assert_eq!(versions_of("ledger-a"), [1, 2, 3, 4]);
    assert_eq!(versions_of("ledger-b"), [1, 2]);

    let first_page = store.read_all(0, 2).await.expect("read_all");
    assert_eq!(first_page, all[..2]);
    let rest = store
        .read_all(first_page[1].position, 100)
        .await
        .expect("read_all");
    assert_eq!(rest, all[2..]);
    let last = all.last().expect("not empty").position;
    assert!(
        store
            .read_all(last, 100)
            .await
            .expect("read_all")
            .is_empty()
    );
    assert!(store.read_all(0, 0).await.expect("read_all").is_empty());

    // What the relay reads is the same log, page for page, with each payload's JSON text.
    let publishable = store.read_all_publishable(0, 2).await.expect("read_all");
    let rest = store
        .read_all_publishable(publishable[1].position, 100)
        .await
        .expect("read_all");
    assert_eq!(publishable.len() + rest.len(), all.len());
    for (p, e) in publishable.iter().chain(&rest).zip(&all) {
        assert_eq!(
            (p.position, p.stream_id.as_str(), p.version, p.event_id),
            (e.position, e.stream_id.as_str(), e.version, e.event_id)
        );
        assert_eq!(
            (&p.event_type, &p.metadata, p.recorded_at),
            (&e.event_type, &e.metadata, e.recorded_at)
        );
        let payload: serde_json::Value = serde_json::from_str(&p.payload).expect("JSON text");
        assert_eq!(payload, e.payload);
    }
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_cursor_that_is_no_event_is_refused(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(1)).await;

    let err = store
        .read_all(1_000_000, 10)
        .await
        .expect_err("unknown cursor");
    assert!(
        matches!(
            err,
            StoreError::UnknownPosition {
                position: 1_000_000
            }
        ),
        "{err:?}"
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_later_commit_stays_hidden_while_an_earlier_writer_is_in_flight(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let mut earlier = pool.begin().await.expect("begin");
    let held = append_in_tx(&mut earlier, "ledger-a", 0, &events(1))
        .await
        .expect("append in tx");

    let committed = append(&store, "ledger-b", 0, &events(1)).await;
    assert!(committed.positions[0] > held.positions[0]);

    let visible = store.read_all(0, 100).await.expect("read_all");
    assert!(
        visible.is_empty(),
        "nothing may be returned while the writer of a lower position is in flight: {visible:?}"
    );

    earlier.commit().await.expect("commit");
    let all = read_all_at_least(&store, 0, 2).await;
    let positions: Vec<i64> = all.iter().map(|event| event.position).collect();
    assert_eq!(positions, [held.positions[0], committed.positions[0]]);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_lower_position_committed_after_a_higher_one_is_not_skipped(pool: PgPool) {
    // Two transactions can take their ids in one order and their positions in the other. Ordering the log
    // by position alone would hand out `older`'s event and then skip `younger`'s lower position for good.
    let store = EventStore::new(pool.clone());
    let mut older = pool.begin().await.expect("begin");
    claim_log(&mut older).await.expect("claim the log");
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *older)
        .await
        .expect("take an xid");
    let mut younger = pool.begin().await.expect("begin");
    let low = append_in_tx(&mut younger, "ledger-y", 0, &events(1))
        .await
        .expect("append in tx");
    let high = append_in_tx(&mut older, "ledger-o", 0, &events(1))
        .await
        .expect("append in tx");
    assert!(high.positions[0] > low.positions[0]);

    older.commit().await.expect("commit older");
    let first = read_all_at_least(&store, 0, 1).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].position, high.positions[0]);

    younger.commit().await.expect("commit younger");
    let next = read_all_at_least(&store, first[0].position, 1).await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].position, low.positions[0]);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_transaction_older_than_the_last_append_to_the_stream_is_refused(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    append(&store, "ledger-a", 0, &events(1)).await;
    let mut old = pool.begin().await.expect("begin");
    claim_log(&mut old).await.expect("claim the log");
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *old)
        .await
        .expect("take an xid");
    append(&store, "ledger-a", 1, &events(1)).await;

    let err = append_in_tx(&mut old, "ledger-a", 2, &events(1))
        .await
        .expect_err("stale");
    assert!(
        matches!(err, StoreError::StaleTransaction { .. }),
        "{err:?}"
    );
    drop(old);

    assert_eq!(append(&store, "ledger-a", 2, &events(1)).await.version, 3);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn transactions_that_cannot_append_do_not_hold_the_log_back(pool: PgPool) {
    // A write to another table (here the relay's checkpoints; in production the projector's read models,
    // or any other database on the server) takes a transaction id but can never add events.
    let store = EventStore::new(pool.clone());
    let mut other = pool.begin().await.expect("begin");
    sqlx::query("insert into relay_checkpoints (relay, position) values ('elsewhere', 0)")
        .execute(&mut *other)
        .await
        .expect("write elsewhere");
    let committed = append(&store, "ledger-a", 0, &events(2)).await;

    let visible = store.read_all(0, 100).await.expect("read_all");
    let positions: Vec<i64> = visible.iter().map(|event| event.position).collect();
    assert_eq!(positions, committed.positions);
    other.rollback().await.expect("rollback");
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_transaction_that_wrote_before_it_appends_is_refused_unless_it_claimed_first(
    pool: PgPool,
) {
    // Such a transaction could be passed by a reader of the log while it has an id but no lock on
    // `events`, and then commit events below the horizon that reader already moved past.
    let store = EventStore::new(pool.clone());
    let mut unclaimed = pool.begin().await.expect("begin");
    sqlx::query("insert into relay_checkpoints (relay, position) values ('first', 0)")
        .execute(&mut *unclaimed)
        .await
        .expect("write elsewhere");
    let err = append_in_tx(&mut unclaimed, "ledger-a", 0, &events(1))
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::WroteBeforeAppend), "{err:?}");
    drop(unclaimed);

    // A plain INSERT is held to the same rule by the statement trigger.
    let mut raw = pool.begin().await.expect("begin");
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *raw)
        .await
        .expect("take an xid");
    let err = sqlx::query("insert into events (stream_id) values ('ledger-a')")
        .execute(&mut *raw)
        .await
        .expect_err("refused");
    let code = err
        .as_database_error()
        .and_then(|db| db.code().map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("55000"), "{err}");
    drop(raw);

    let mut claimed = pool.begin().await.expect("begin");
    claim_log(&mut claimed).await.expect("claim the log");
    sqlx::query("insert into relay_checkpoints (relay, position) values ('first', 0)")
        .execute(&mut *claimed)
        .await
        .expect("write elsewhere");
    let result = append_in_tx(&mut claimed, "ledger-a", 0, &events(1))
        .await
        .expect("append after claiming");
    claimed.commit().await.expect("commit");
    let all = read_all_at_least(&store, 0, 1).await;
    assert_eq!(all[0].position, result.positions[0]);
}
