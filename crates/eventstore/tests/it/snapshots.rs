//! Snapshots: saving, loading the latest, and pruning the old ones.

use serde_json::json;
use sqlx::PgPool;
use tally_eventstore::{EventStore, KEPT_SNAPSHOTS};

async fn versions(pool: &PgPool, stream_id: &str) -> Vec<i64> {
    sqlx::query_scalar("select version from snapshots where stream_id = $1 order by version")
        .bind(stream_id)
        .fetch_all(pool)
        .await
        .expect("snapshot versions")
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_latest_snapshot_is_loaded_and_old_ones_are_pruned(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    assert_eq!(store.latest_snapshot("ledger-a").await.expect("load"), None);

    for version in [10, 20, 30, 40] {
        store
            .save_snapshot("ledger-a", version, 1, &json!({ "balance": version }))
            .await
            .expect("save");
    }
    store
        .save_snapshot("ledger-b", 5, 1, &json!({}))
        .await
        .expect("save");

    let latest = store
        .latest_snapshot("ledger-a")
        .await
        .expect("load")
        .expect("saved");
    assert_eq!(
        (
            latest.stream_id.as_str(),
            latest.version,
            latest.schema_version
        ),
        ("ledger-a", 40, 1)
    );
    assert_eq!(latest.state, json!({ "balance": 40 }));
    assert_eq!(versions(&pool, "ledger-a").await, [20, 30, 40]);
    assert_eq!(
        i64::try_from(versions(&pool, "ledger-a").await.len()).expect("small"),
        KEPT_SNAPSHOTS
    );
    assert_eq!(versions(&pool, "ledger-b").await, [5]);

    // An older snapshot arriving late is pruned at once; the latest stays.
    store
        .save_snapshot("ledger-a", 15, 1, &json!({}))
        .await
        .expect("save");
    assert_eq!(versions(&pool, "ledger-a").await, [20, 30, 40]);

    // Saving at an existing version replaces it (a new state shape, say).
    store
        .save_snapshot("ledger-a", 40, 2, &json!({ "balances": [40] }))
        .await
        .expect("save");
    let latest = store
        .latest_snapshot("ledger-a")
        .await
        .expect("load")
        .expect("saved");
    assert_eq!((latest.version, latest.schema_version), (40, 2));
    assert_eq!(latest.state, json!({ "balances": [40] }));
    assert_eq!(versions(&pool, "ledger-a").await, [20, 30, 40]);
}
