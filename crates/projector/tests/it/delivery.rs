//! Duplicate, out-of-order and gappy deliveries, injected straight into the projection.

use crate::fixtures::*;
use sqlx::PgPool;
use tally_projector::{StoredEvent, project_batch, rebuild};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn duplicates_reordering_and_gaps_leave_the_read_models_exact(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 700).await;
    let store = traffic.store.clone();
    let events: Vec<StoredEvent> = store
        .read_stream("alpha", 0, 1_000)
        .await
        .expect("read")
        .into_iter()
        .map(StoredEvent::from)
        .collect();
    assert!(events.len() > 10);
    let chunks: Vec<Vec<StoredEvent>> = events.chunks(3).map(<[StoredEvent]>::to_vec).collect();
    // Deliver the third chunk first (a gap: filled from the store), then everything again in reverse
    // (all duplicates), then the first chunk once more.
    let order = [2usize, 0, 1]
        .into_iter()
        .chain((0..chunks.len()).rev())
        .chain([0]);
    for i in order {
        project_batch(&pool, &store, "read", "alpha", chunks[i].clone())
            .await
            .expect("projects");
    }
    let version: i64 =
        sqlx::query_scalar("select version from read.checkpoints where ledger_id = 'alpha'")
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
    assert_eq!(version, events.len() as i64);
    // beta was never delivered: project it from the store so the comparison covers both ledgers.
    tally_projector::catch_up(&pool, &store, "read", "beta")
        .await
        .expect("catch up beta");
    assert_exact(rebuild::differences(&pool, &store).await.expect("compare"));
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_message_out_of_any_order_within_itself_is_applied_in_version_order(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 800).await;
    let store = traffic.store.clone();
    let mut events: Vec<StoredEvent> = store
        .read_stream("alpha", 0, 1_000)
        .await
        .expect("read")
        .into_iter()
        .map(StoredEvent::from)
        .collect();
    events.reverse();
    let mut doubled = events.clone();
    doubled.extend(events);
    project_batch(&pool, &store, "read", "alpha", doubled)
        .await
        .expect("projects");
    tally_projector::catch_up(&pool, &store, "read", "beta")
        .await
        .expect("catch up beta");
    assert_exact(rebuild::differences(&pool, &store).await.expect("compare"));
}
