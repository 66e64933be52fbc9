//! Helpers shared by the integration tests: event builders, tampering, and waiting on the global log.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use tally_eventstore::{AppendResult, EventMetadata, EventStore, NewEvent, RecordedEvent};
use uuid::Uuid;

pub fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "alice".to_owned(),
        client: "tests".to_owned(),
        correlation_id: Some("corr-1".to_owned()),
        causation_id: None,
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
    }
}

/// An event that creates no transfer; `n` goes into the payload so events differ.
pub fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "AccountOpened".to_owned(),
        schema_version: 1,
        payload: json!({ "n": n, "code": format!("assets:bank:{n}") }).into(),
        metadata: metadata(),
        recorded_at: Utc::now(),
        transfer_id: None,
    }
}

pub fn transfer(transfer_id: Uuid) -> NewEvent {
    NewEvent {
        event_type: "TransferCreated".to_owned(),
        payload: json!({ "id": transfer_id, "amount": "1250" }).into(),
        transfer_id: Some(transfer_id),
        ..event(0)
    }
}

pub fn events(count: i64) -> Vec<NewEvent> {
    (1..=count).map(event).collect()
}

pub async fn append(
    store: &EventStore,
    stream_id: &str,
    expected: i64,
    events: &[NewEvent],
) -> AppendResult {
    match store.append(stream_id, expected, events).await {
        Ok(result) => result,
        Err(err) => panic!("append to {stream_id} at {expected} failed: {err}"),
    }
}

pub async fn read_whole_stream(store: &EventStore, stream_id: &str) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |event: &RecordedEvent| event.version);
        let page = store
            .read_stream(stream_id, after, 500)
            .await
            .expect("read stream");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Runs `sql` the way an attacker with direct database access would, past the immutability trigger.
pub async fn tamper(pool: &PgPool, sql: &str) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("set local tally.allow_tamper = 'on'")
        .execute(&mut *tx)
        .await
        .expect("set tamper flag");
    sqlx::query(sql)
        .execute(&mut *tx)
        .await
        .expect("tamper statement");
    tx.commit().await.expect("commit tamper");
}

/// Reads the global log after `after` until it holds at least `count` events. The log holds back while any
/// writing transaction on the server is older, and tests in other databases write concurrently, so a
/// committed event can take a moment to appear.
pub async fn read_all_at_least(store: &EventStore, after: i64, count: usize) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events = store.read_all(after, 10_000).await.expect("read_all");
        if events.len() >= count {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "read_all after {after} returned {} events, want {count}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
