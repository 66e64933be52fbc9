//! Every committed event is published, in stream order, by exactly one active relay; a standby takes
//! over from the checkpoint when the active one dies.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use tally_eventstore::{EventMetadata, EventStore, NewEvent};
use tally_messaging::test_support::delete_broker_objects;
use tally_messaging::{
    AmqpConfig, EventBatch, Relay, RelayConfig, connect, declare_events_exchange,
};
use uuid::Uuid;

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: if n % 5 == 0 {
            "AccountOpened"
        } else {
            "TransferPosted"
        }
        .into(),
        schema_version: 1,
        payload: serde_json::json!({ "n": n }).into(),
        metadata: EventMetadata {
            actor: "tester".into(),
            client: "relay-tests".into(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
        },
        recorded_at: chrono::Utc::now(),
        transfer_id: None,
    }
}

async fn append(store: &EventStore, stream: &str, from: i64, count: i64) {
    let events: Vec<NewEvent> = (from..from + count).map(event).collect();
    store
        .append(stream, from - 1, &events)
        .await
        .expect("append");
}

/// Received (stream → versions in arrival order) until `total` distinct events per stream arrived.
async fn receive(
    consumer: &mut lapin::Consumer,
    got: &mut BTreeMap<String, Vec<i64>>,
    want: usize,
) {
    let distinct = |got: &BTreeMap<String, Vec<i64>>| {
        got.values()
            .map(|v| v.iter().collect::<std::collections::BTreeSet<_>>().len())
            .sum::<usize>()
    };
    while distinct(got) < want {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("a message within 30 s")
            .expect("consumer open")
            .expect("delivery");
        let batch: EventBatch = serde_json::from_slice(&delivery.data).expect("a batch");
        assert!(
            delivery
                .routing_key
                .as_str()
                .starts_with(&format!("{}.", batch.ledger)),
            "routing key names the ledger"
        );
        got.entry(batch.ledger.clone())
            .or_default()
            .extend(batch.events.iter().map(|e| e.version));
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

#[track_caller]
fn assert_in_order_without_gaps(got: &BTreeMap<String, Vec<i64>>, expected: i64) {
    for (stream, versions) in got {
        // Duplicates may come after a fail-over, but each stream's first sightings are 1, 2, 3, ...
        let mut next = 1;
        for &v in versions {
            assert!(v <= next, "{stream}: version {v} arrived before {next}");
            if v == next {
                next += 1;
            }
        }
        assert_eq!(next - 1, expected, "{stream}: every version arrived");
    }
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn one_relay_publishes_everything_in_order_and_a_standby_takes_over(pool: PgPool) {
    let id = Uuid::new_v4().simple().to_string();
    let amqp = AmqpConfig {
        exchange: format!("test.events.{id}"),
        ..AmqpConfig::default()
    };
    let connection = connect(&amqp).await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    declare_events_exchange(&channel, &amqp.exchange)
        .await
        .expect("exchange");
    let queue = channel
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().as_str(),
            &amqp.exchange,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut consumer = channel
        .basic_consume(
            queue.name().as_str(),
            "test",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");

    let store = EventStore::new(pool.clone());
    append(&store, "alpha", 1, 30).await;
    append(&store, "beta", 1, 20).await;
    let config = RelayConfig {
        amqp: amqp.clone(),
        idle_poll: Duration::from_millis(20),
        max_events_per_message: 7,
        ..RelayConfig::default()
    };
    let active = tokio::spawn(Relay::new(pool.clone(), config.clone()).run(std::future::pending()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let standby = tokio::spawn(Relay::new(pool.clone(), config).run(std::future::pending()));

    let mut got = BTreeMap::new();
    receive(&mut consumer, &mut got, 50).await;
    append(&store, "alpha", 31, 10).await;
    append(&store, "beta", 21, 20).await;
    receive(&mut consumer, &mut got, 80).await;
    // With one active relay and no crash, nothing is published twice.
    assert_eq!(
        got.values().map(Vec::len).sum::<usize>(),
        80,
        "no duplicates from a single relay"
    );
    assert_in_order_without_gaps(&got, 40);

    // The active relay dies; its lock goes with its connection and the standby resumes.
    active.abort();
    let _ = active.await;
    append(&store, "alpha", 41, 15).await;
    append(&store, "beta", 41, 15).await;
    receive(&mut consumer, &mut got, 110).await;
    assert_in_order_without_gaps(&got, 55);
    let checkpoint: i64 =
        sqlx::query_scalar("select position from relay_checkpoints where relay = 'main'")
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
    assert!(checkpoint > 0);

    standby.abort();
    let _ = connection.close(0, "done").await;
    delete_broker_objects(&amqp, &[], &[&amqp.exchange]).await;
}
