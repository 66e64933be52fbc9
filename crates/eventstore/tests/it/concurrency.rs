//! Many writers on one stream, and a writer that dies mid-transaction.

use std::collections::HashSet;

use sqlx::PgPool;
use tally_eventstore::{EventStore, StoreError, VerifyReport, append_in_tx};

use crate::support::{append, event, events, read_all_at_least, read_whole_stream};

const WRITERS: i64 = 16;
const APPENDS_PER_WRITER: i64 = 50;

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn sixteen_writers_retrying_on_conflict_leave_a_dense_intact_stream(pool: PgPool) {
    let store = EventStore::new(pool);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut expected = 0;
            let mut conflicts = 0_u64;
            for n in 0..APPENDS_PER_WRITER {
                loop {
                    match store
                        .append("ledger-a", expected, &[event(writer * 1_000 + n)])
                        .await
                    {
                        Ok(result) => {
                            expected = result.version;
                            break;
                        }
                        Err(StoreError::Conflict { actual, .. }) => {
                            expected = actual;
                            conflicts += 1;
                        }
                        Err(err) => panic!("writer {writer}: {err}"),
                    }
                }
            }
            conflicts
        }));
    }
    for writer in writers {
        writer.await.expect("writer task");
    }

    let total = WRITERS * APPENDS_PER_WRITER;
    let recorded = read_whole_stream(&store, "ledger-a").await;
    let versions: Vec<i64> = recorded.iter().map(|event| event.version).collect();
    assert_eq!(versions, (1..=total).collect::<Vec<_>>());
    let payloads: HashSet<String> = recorded
        .iter()
        .map(|event| event.payload.to_string())
        .collect();
    assert_eq!(
        payloads.len(),
        recorded.len(),
        "every append took effect exactly once"
    );
    let report = store.verify_stream("ledger-a").await.expect("verify");
    assert!(
        matches!(report, VerifyReport::Intact { version, .. } if version == total),
        "{report:?}"
    );
    assert_eq!(
        read_all_at_least(&store, 0, recorded.len()).await.len(),
        recorded.len()
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_connection_killed_mid_append_leaves_nothing_behind(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let before = append(&store, "ledger-a", 0, &events(2)).await;

    let mut doomed = pool.begin().await.expect("begin");
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *doomed)
        .await
        .expect("backend pid");
    append_in_tx(&mut doomed, "ledger-a", 2, &events(3))
        .await
        .expect("append in tx");
    append_in_tx(&mut doomed, "ledger-new", 0, &events(1))
        .await
        .expect("append in tx");
    let terminated: bool = sqlx::query_scalar("select pg_terminate_backend($1, 10000)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .expect("terminate");
    assert!(terminated);
    assert!(doomed.commit().await.is_err());

    assert_eq!(
        store.stream_head("ledger-a").await.expect("head"),
        Some((2, before.head_hash.to_vec()))
    );
    assert_eq!(read_whole_stream(&store, "ledger-a").await.len(), 2);
    assert_eq!(store.stream_head("ledger-new").await.expect("head"), None);
    assert_eq!(
        store.verify_stream("ledger-a").await.expect("verify"),
        VerifyReport::Intact {
            version: 2,
            head_hash: before.head_hash
        }
    );

    // The head lock died with the connection.
    assert_eq!(append(&store, "ledger-a", 2, &events(1)).await.version, 3);
    assert_eq!(append(&store, "ledger-new", 0, &events(1)).await.version, 1);
    assert!(
        store
            .verify_stream("ledger-a")
            .await
            .expect("verify")
            .is_intact()
    );
}
