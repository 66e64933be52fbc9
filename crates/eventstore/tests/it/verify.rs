//! Verification of the hash chain, and the tampering it catches.

use sqlx::PgPool;
use tally_eventstore::{EventStore, GENESIS_HASH, RecordedEvent, VerifyReport};

use crate::support::{append, events, read_whole_stream, tamper};

/// A stream `ledger-a` at version 5.
async fn five_events(pool: &PgPool) -> EventStore {
    let store = EventStore::new(pool.clone());
    append(&store, "ledger-a", 0, &events(3)).await;
    append(&store, "ledger-a", 3, &events(2)).await;
    store
}

async fn verify(store: &EventStore) -> VerifyReport {
    store.verify_stream("ledger-a").await.expect("verify")
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_long_untouched_stream_verifies_across_pages(pool: PgPool) {
    let store = EventStore::new(pool);
    let mut head = None;
    for batch in 0..5 {
        head = Some(
            append(&store, "ledger-a", batch * 500, &events(500))
                .await
                .head_hash,
        );
    }

    assert_eq!(
        verify(&store).await,
        VerifyReport::Intact {
            version: 2_500,
            head_hash: head.expect("appended")
        }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_stream_without_events_is_intact_at_version_zero(pool: PgPool) {
    let store = EventStore::new(pool);
    assert_eq!(
        verify(&store).await,
        VerifyReport::Intact {
            version: 0,
            head_hash: GENESIS_HASH
        }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_edited_payload_is_reported_at_its_version(pool: PgPool) {
    let store = five_events(&pool).await;
    tamper(
        &pool,
        "update events set payload = jsonb_set(payload, '{n}', '1000') where stream_id = 'ledger-a' and version = 3",
    )
    .await;
    assert_eq!(
        verify(&store).await,
        VerifyReport::TamperedEvent { version: 3 }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn edited_metadata_is_reported_at_its_version(pool: PgPool) {
    let store = five_events(&pool).await;
    tamper(
        &pool,
        r#"update events set metadata = metadata || '{"actor": "mallory"}' where stream_id = 'ledger-a' and version = 2"#,
    )
    .await;
    assert_eq!(
        verify(&store).await,
        VerifyReport::TamperedEvent { version: 2 }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn metadata_that_no_longer_parses_is_reported_as_tampering(pool: PgPool) {
    let store = five_events(&pool).await;
    tamper(
        &pool,
        r#"update events set metadata = '"nobody"' where stream_id = 'ledger-a' and version = 4"#,
    )
    .await;
    assert_eq!(
        verify(&store).await,
        VerifyReport::TamperedEvent { version: 4 }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_rewired_prev_hash_is_reported(pool: PgPool) {
    let store = five_events(&pool).await;
    tamper(
        &pool,
        "update events set prev_hash = (select hash from events where stream_id = 'ledger-a' and version = 1) \
         where stream_id = 'ledger-a' and version = 4",
    )
    .await;
    assert_eq!(
        verify(&store).await,
        VerifyReport::TamperedEvent { version: 4 }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn rehashing_an_edited_event_breaks_the_next_link(pool: PgPool) {
    let store = five_events(&pool).await;
    let mut edited = read_whole_stream(&store, "ledger-a").await.swap_remove(2);
    edited.payload = serde_json::json!({"n": 1000});
    let prev: [u8; 32] = edited.prev_hash.clone().try_into().expect("32 bytes");
    let forged = edited.recompute_hash(&prev);
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("set local tally.allow_tamper = 'on'")
        .execute(&mut *tx)
        .await
        .expect("flag");
    sqlx::query(
        "update events set payload = $1, hash = $2 where stream_id = 'ledger-a' and version = 3",
    )
    .bind(&edited.payload)
    .bind(&forged[..])
    .execute(&mut *tx)
    .await
    .expect("forge");
    tx.commit().await.expect("commit");

    assert_eq!(
        verify(&store).await,
        VerifyReport::TamperedEvent { version: 4 }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_deleted_middle_event_is_reported_missing(pool: PgPool) {
    let store = five_events(&pool).await;
    tamper(
        &pool,
        "delete from events where stream_id = 'ledger-a' and version = 3",
    )
    .await;
    assert_eq!(
        verify(&store).await,
        VerifyReport::MissingEvent {
            expected_version: 3
        }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_deleted_last_event_is_reported_missing(pool: PgPool) {
    let store = five_events(&pool).await;
    tamper(
        &pool,
        "delete from events where stream_id = 'ledger-a' and version = 5",
    )
    .await;
    assert_eq!(
        verify(&store).await,
        VerifyReport::MissingEvent {
            expected_version: 5
        }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_head_row_that_disagrees_with_the_last_event_is_reported(pool: PgPool) {
    let store = five_events(&pool).await;
    sqlx::query("update streams set head_hash = $1 where stream_id = 'ledger-a'")
        .bind(&[7_u8; 32][..])
        .execute(&pool)
        .await
        .expect("edit head");
    assert_eq!(
        verify(&store).await,
        VerifyReport::HeadMismatch {
            head_version: 5,
            last_version: 5
        }
    );

    sqlx::query("delete from streams where stream_id = 'ledger-a'")
        .execute(&pool)
        .await
        .expect("drop head");
    assert_eq!(
        verify(&store).await,
        VerifyReport::HeadMismatch {
            head_version: 0,
            last_version: 5
        }
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_exported_stream_verifies_with_the_hash_function_alone(pool: PgPool) {
    let store = five_events(&pool).await;
    let export: Vec<String> = read_whole_stream(&store, "ledger-a")
        .await
        .iter()
        .map(|event| serde_json::to_string(event).expect("serialise"))
        .collect();

    let mut prev = GENESIS_HASH;
    for line in &export {
        let event: RecordedEvent = serde_json::from_str(line).expect("deserialise");
        assert_eq!(event.prev_hash, prev.to_vec());
        let hash = event.recompute_hash(&prev);
        assert_eq!(event.hash, hash.to_vec());
        prev = hash;
    }
    let (_, head_hash) = store
        .stream_head("ledger-a")
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head_hash, prev.to_vec());
    assert!(export[0].contains(&format!("\"prev_hash\":\"{}\"", "0".repeat(64))));
}
