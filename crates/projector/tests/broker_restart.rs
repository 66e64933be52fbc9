//! Restarting RabbitMQ in the middle of a stream of commands: nothing lost, nothing applied twice.
//!
//! It stops the shared broker, so it is `#[ignore]`d in the parallel run and `scripts/test` runs it in
//! a separate, serial pass (`cargo test -p tally-projector --test broker_restart -- --ignored`).

#[path = "it/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use fixtures::*;
use sqlx::PgPool;
use std::process::Command;
use std::time::Duration;
use tally_messaging::Relay;
use tally_projector::Projector;

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[ignore = "restarts the shared broker; run serially by scripts/test"]
#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_broker_restart_during_traffic_loses_and_doubles_nothing(pool: PgPool) {
    let names = Names::unique();
    let traffic = Traffic::start(&pool).await;
    let relay = tokio::spawn(Relay::new(pool.clone(), names.relay()).run(std::future::pending()));
    let projector =
        tokio::spawn(Projector::new(pool.clone(), names.projector()).run(std::future::pending()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let writer = {
        let writers = traffic.writers.clone();
        let store = traffic.store.clone();
        tokio::spawn(async move {
            let traffic = Traffic { writers, store };
            for i in 0..300u128 {
                traffic
                    .must(
                        "alpha",
                        transfer(10_000 + i, "equity:capital", "assets:cash", 3),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    writer.await.expect("writer task");

    assert!(
        eventually(60, || caught_up(&pool)).await,
        "projection did not catch up after the restart"
    );
    let projected: i64 = sqlx::query_scalar(
        "select count(*) from read.transfers where ledger_id = 'alpha' and description like 'transfer 1____'",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(
        projected, 300,
        "every acknowledged transfer is projected once"
    );
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from events where stream_id = 'alpha' and transfer_id is not null",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(stored, 300, "and stored once");
    assert_same_as_rebuild(&pool, &traffic.store).await;
    relay.abort();
    projector.abort();
    names.delete().await;
}
