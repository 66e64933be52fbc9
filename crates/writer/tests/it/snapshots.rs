//! Snapshots are taken every N events (spaced out as the state grows) and load the same state as a full
//! replay.

use crate::fixtures::*;
use sqlx::PgPool;
use tally_eventstore::EventStore;
use tally_writer::{WriterConfig, Writers, load_ledger};
use uuid::Uuid;

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_ledger_with_a_snapshot_loads_the_same_state_as_a_full_replay(pool: PgPool) {
    let store = EventStore::new(pool);
    let config = WriterConfig {
        snapshot_every: 10,
        ..WriterConfig::default()
    };
    let writers = setup(&store, config.clone()).await;
    let ledger = main_ledger();
    for i in 0..31u128 {
        accepted(
            writers
                .submit(
                    &ledger,
                    sub(transfer(
                        Uuid::from_u128(i),
                        "equity:capital",
                        "assets:a",
                        2,
                    )),
                )
                .await,
        );
    }
    writers.shutdown().await;
    let snapshot = latest_snapshot(&store).await;
    // A snapshot is due once the events since the last one reach both `snapshot_every` and half the
    // state's size: at 10 (9 accounts and transfers) and at 20 (19); at 35 the state holds 34, so the 15
    // events since 20 are not yet enough.
    assert_eq!(snapshot.version, 20, "snapshots at 10 and 20 of 35 events");
    let loaded = load_ledger(&store, &ledger).await.expect("loads");
    let replayed = replay(&store, &ledger).await;
    assert_eq!(loaded.version, 35);
    // Snapshots leave settled transfers out (the writer recalls them from the store when needed): the
    // loaded state has those of the events after the snapshot, each as a full replay has it.
    assert_eq!(loaded.without_settled(), replayed.without_settled());
    assert_eq!(loaded.transfers.len(), 15);
    for (id, record) in &loaded.transfers {
        assert_eq!(Some(record), replayed.transfer(id));
    }

    // A corrupt snapshot is ignored: the stream is replayed instead.
    sqlx::query("update snapshots set state = '{\"nonsense\": true}'")
        .execute(store.pool())
        .await
        .expect("damage snapshots");
    assert_eq!(load_ledger(&store, &ledger).await.expect("loads"), replayed);
    // So are bytes that are not JSON at all.
    sqlx::query("update snapshots set state = '\\xff00'::bytea")
        .execute(store.pool())
        .await
        .expect("damage snapshots");
    assert_eq!(load_ledger(&store, &ledger).await.expect("loads"), replayed);
    // And writing continues from the right version.
    let again = Writers::new(store.clone(), config);
    let a = accepted(
        again
            .submit(
                &ledger,
                sub(transfer(
                    Uuid::from_u128(99),
                    "equity:capital",
                    "assets:a",
                    2,
                )),
            )
            .await,
    );
    assert_eq!(a.version, 36);
    again.shutdown().await;
}
