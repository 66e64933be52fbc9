//! The guard that keeps recorded events from being edited by ordinary writes.

use sqlx::PgPool;
use tally_eventstore::EventStore;

use crate::support::{append, events, read_whole_stream, tamper};

async fn refused(pool: &PgPool, sql: &str) -> String {
    match sqlx::query(sql).execute(pool).await {
        Ok(done) => panic!("{sql} was allowed ({} rows)", done.rows_affected()),
        Err(err) => err.to_string(),
    }
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn recorded_events_cannot_be_updated_deleted_or_truncated(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    append(&store, "ledger-a", 0, &events(2)).await;
    let before = read_whole_stream(&store, "ledger-a").await;

    for sql in [
        "update events set payload = '{}' where version = 1",
        "delete from events where version = 2",
        "truncate events",
    ] {
        let message = refused(&pool, sql).await;
        assert!(message.contains("events are immutable"), "{sql}: {message}");
    }

    assert_eq!(read_whole_stream(&store, "ledger-a").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_tamper_flag_lasts_only_for_its_transaction(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    append(&store, "ledger-a", 0, &events(2)).await;

    tamper(&pool, "update events set payload = '{}' where version = 1").await;
    assert_eq!(
        read_whole_stream(&store, "ledger-a").await[0].payload,
        serde_json::json!({})
    );

    let message = refused(&pool, "delete from events where version = 2").await;
    assert!(message.contains("events are immutable"), "{message}");
}
