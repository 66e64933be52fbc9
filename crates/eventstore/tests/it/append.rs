//! Appending: reading back, optimistic concurrency, and all-or-nothing batches.

use chrono::{SubsecRound, TimeZone, Utc};
use serde_json::json;
use sqlx::PgPool;
use tally_eventstore::{EventStore, GENESIS_HASH, StoreError, VerifyReport};
use uuid::Uuid;

use crate::support::{append, event, events, read_whole_stream, transfer};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn appended_events_read_back_as_written(pool: PgPool) {
    let store = EventStore::new(pool);
    let batch = events(3);

    let result = append(&store, "ledger-a", 0, &batch).await;

    assert_eq!(result.version, 3);
    assert_eq!(result.positions.len(), 3);
    assert!(result.positions.windows(2).all(|pair| pair[0] < pair[1]));
    let read = store.read_stream("ledger-a", 0, 100).await.expect("read");
    assert_eq!(read.len(), 3);
    for (i, (recorded, new)) in read.iter().zip(&batch).enumerate() {
        assert_eq!(recorded.stream_id, "ledger-a");
        assert_eq!(recorded.version, i64::try_from(i).expect("small") + 1);
        assert_eq!(recorded.position, result.positions[i]);
        assert_eq!(recorded.event_id, new.event_id);
        assert_eq!(recorded.event_type, new.event_type);
        assert_eq!(recorded.schema_version, new.schema_version);
        assert_eq!(recorded.payload, new.payload);
        assert_eq!(recorded.metadata, new.metadata);
        assert_eq!(recorded.recorded_at, new.recorded_at.trunc_subsecs(6));
        assert_eq!(recorded.transfer_id, None);
    }
    assert_eq!(read[0].prev_hash, GENESIS_HASH.to_vec());
    assert_eq!(read[1].prev_hash, read[0].hash);
    assert_eq!(read[2].prev_hash, read[1].hash);
    assert_eq!(read[2].hash, result.head_hash.to_vec());
    assert_eq!(
        store.stream_head("ledger-a").await.expect("head"),
        Some((3, result.head_hash.to_vec()))
    );

    let next = append(&store, "ledger-a", 3, &events(2)).await;
    assert_eq!(next.version, 5);
    let tail = store.read_stream("ledger-a", 3, 100).await.expect("read");
    assert_eq!(tail[0].prev_hash, result.head_hash.to_vec());
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn reads_respect_versions_limits_and_ranges(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(5)).await;

    let versions = |events: Vec<tally_eventstore::RecordedEvent>| -> Vec<i64> {
        events.into_iter().map(|event| event.version).collect()
    };
    assert_eq!(
        versions(store.read_stream("ledger-a", 1, 2).await.expect("read")),
        [2, 3]
    );
    assert_eq!(
        versions(store.read_stream("ledger-a", 5, 10).await.expect("read")),
        Vec::<i64>::new()
    );
    assert_eq!(
        versions(store.read_stream("ledger-a", 0, -1).await.expect("read")),
        Vec::<i64>::new()
    );
    assert_eq!(
        versions(
            store
                .read_stream_range("ledger-a", 1, 4)
                .await
                .expect("read")
        ),
        [2, 3, 4]
    );
    assert_eq!(
        versions(
            store
                .read_stream_range("ledger-a", 3, 99)
                .await
                .expect("read")
        ),
        [4, 5]
    );
    assert!(
        store
            .read_stream("ledger-b", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(store.stream_head("ledger-b").await.expect("head"), None);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_stale_expected_version_is_a_conflict_naming_the_actual_version(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-a", 0, &events(2)).await;

    for expected in [0, 1, 3, 7, -1] {
        let err = store
            .append("ledger-a", expected, &events(1))
            .await
            .expect_err("must conflict");
        assert!(
            matches!(&err, StoreError::Conflict { stream_id, expected: e, actual: 2 } if stream_id == "ledger-a" && *e == expected),
            "expected {expected}: {err:?}"
        );
    }
    let err = store
        .append("ledger-b", 4, &events(1))
        .await
        .expect_err("must conflict");
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 4,
                actual: 0,
                ..
            }
        ),
        "{err:?}"
    );

    assert_eq!(read_whole_stream(&store, "ledger-a").await.len(), 2);
    assert!(
        store
            .read_stream("ledger-b", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(store.stream_head("ledger-b").await.expect("head"), None);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_empty_batch_writes_nothing_and_only_checks_the_version(pool: PgPool) {
    let store = EventStore::new(pool);
    let created = append(&store, "ledger-a", 0, &events(2)).await;

    let result = append(&store, "ledger-a", 2, &[]).await;
    assert_eq!((result.version, result.head_hash), (2, created.head_hash));
    assert!(result.positions.is_empty());

    let err = store
        .append("ledger-a", 1, &[])
        .await
        .expect_err("must conflict");
    assert!(
        matches!(err, StoreError::Conflict { actual: 2, .. }),
        "{err:?}"
    );

    let result = append(&store, "ledger-new", 0, &[]).await;
    assert_eq!((result.version, result.head_hash), (0, GENESIS_HASH));
    assert_eq!(store.stream_head("ledger-new").await.expect("head"), None);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_batch_whose_third_event_repeats_a_recorded_transfer_writes_nothing(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let transfer_id = Uuid::new_v4();
    let first = append(&store, "ledger-a", 0, &[transfer(transfer_id)]).await;

    let batch = [event(1), transfer(Uuid::new_v4()), transfer(transfer_id)];
    let err = store
        .append("ledger-a", 1, &batch)
        .await
        .expect_err("duplicate transfer");

    assert!(
        matches!(&err, StoreError::DuplicateTransfer { stream_id, transfer_id: t } if stream_id == "ledger-a" && *t == transfer_id),
        "{err:?}"
    );
    assert_eq!(read_whole_stream(&store, "ledger-a").await.len(), 1);
    let count: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
    assert_eq!(
        store.stream_head("ledger-a").await.expect("head"),
        Some((1, first.head_hash.to_vec()))
    );
    assert!(
        store
            .verify_stream("ledger-a")
            .await
            .expect("verify")
            .is_intact()
    );

    // Nothing was left locked or half-written: the stream takes the next append as usual.
    let next = append(&store, "ledger-a", 1, &batch[..2]).await;
    assert_eq!(next.version, 3);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_transfer_repeated_within_one_batch_writes_nothing(pool: PgPool) {
    let store = EventStore::new(pool);
    let transfer_id = Uuid::new_v4();

    let batch = [transfer(transfer_id), event(1), transfer(transfer_id)];
    let err = store
        .append("ledger-a", 0, &batch)
        .await
        .expect_err("duplicate transfer");

    assert!(
        matches!(err, StoreError::DuplicateTransfer { transfer_id: t, .. } if t == transfer_id),
        "{err:?}"
    );
    assert_eq!(store.stream_head("ledger-a").await.expect("head"), None);
    assert!(
        store
            .read_stream("ledger-a", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_transfer_id_is_unique_per_stream_not_across_streams(pool: PgPool) {
    let store = EventStore::new(pool);
    let transfer_id = Uuid::new_v4();

    append(&store, "ledger-a", 0, &[transfer(transfer_id)]).await;
    append(&store, "ledger-b", 0, &[transfer(transfer_id)]).await;

    let err = store
        .append("ledger-b", 1, &[transfer(transfer_id)])
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::DuplicateTransfer { .. }),
        "{err:?}"
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_retried_event_is_a_duplicate_event(pool: PgPool) {
    let store = EventStore::new(pool);
    let original = event(1);
    append(&store, "ledger-a", 0, std::slice::from_ref(&original)).await;

    let err = store
        .append("ledger-a", 1, &[event(2), original.clone()])
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::DuplicateEvent { event_id } if event_id == original.event_id),
        "{err:?}"
    );

    let err = store
        .append("ledger-b", 0, &[original.clone(), original.clone()])
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, StoreError::DuplicateEvent { event_id } if event_id == original.event_id),
        "{err:?}"
    );
    assert_eq!(read_whole_stream(&store, "ledger-a").await.len(), 1);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn payloads_survive_jsonb_and_still_verify(pool: PgPool) {
    let store = EventStore::new(pool);
    // jsonb reorders keys, prints numbers its own way and may re-escape strings; the chain must not notice.
    let mut tricky = event(1);
    tricky.payload = json!({
        "zeta": 1, "alpha": {"b": [1, 2.5, -0.0], "a": null}, "long_key_first": true,
        "integral_float": 1e15, "tiny": 1.5e-7, "huge": 1e300, "third": 0.1 + 0.2, "u64": u64::MAX,
        "text": "quote \" backslash \\ newline \n tab \t é 😀 \u{1f}",
    })
    .into();
    tricky.recorded_at = Utc
        .timestamp_opt(1_700_000_000, 123_456_789)
        .single()
        .expect("timestamp");
    let mut before_epoch = event(2);
    before_epoch.recorded_at = Utc
        .timestamp_opt(-86_400 * 365 * 40, 987_654_321)
        .single()
        .expect("timestamp");
    let result = append(&store, "ledger-a", 0, &[tricky, before_epoch]).await;

    assert_eq!(
        store.verify_stream("ledger-a").await.expect("verify"),
        VerifyReport::Intact {
            version: 2,
            head_hash: result.head_hash
        }
    );
    for recorded in read_whole_stream(&store, "ledger-a").await {
        assert_eq!(
            recorded
                .recompute_hash(&recorded.prev_hash.clone().try_into().expect("32 bytes"))
                .to_vec(),
            recorded.hash
        );
    }
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn list_streams_names_every_stream_with_its_version(pool: PgPool) {
    let store = EventStore::new(pool);
    append(&store, "ledger-b", 0, &events(2)).await;
    append(&store, "ledger-a", 0, &events(1)).await;
    // A failed creation leaves no placeholder behind.
    let duplicate = event(9);
    let failed = store
        .append("ledger-c", 0, &[duplicate.clone(), duplicate])
        .await;
    assert!(failed.is_err());

    let streams: Vec<(String, i64)> = store
        .list_streams()
        .await
        .expect("list")
        .into_iter()
        .map(|stream| (stream.stream_id, stream.version))
        .collect();
    assert_eq!(
        streams,
        [("ledger-a".to_owned(), 1), ("ledger-b".to_owned(), 2)]
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn one_transaction_may_append_to_a_stream_several_times(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let mut tx = pool.begin().await.expect("begin");
    tally_eventstore::append_in_tx(&mut tx, "ledger-a", 0, &events(2))
        .await
        .expect("first");
    tally_eventstore::append_in_tx(&mut tx, "ledger-b", 0, &events(1))
        .await
        .expect("other stream");
    let last = tally_eventstore::append_in_tx(&mut tx, "ledger-a", 2, &events(3))
        .await
        .expect("second");
    tx.commit().await.expect("commit");

    assert_eq!(last.version, 5);
    assert_eq!(
        store.verify_stream("ledger-a").await.expect("verify"),
        VerifyReport::Intact {
            version: 5,
            head_hash: last.head_hash
        }
    );
}
