//! Health, metrics and graceful shutdown.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestApp, problem, transfer};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn readiness_follows_the_database(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;

    assert_eq!(app.get("/livez").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);

    pool.close().await;

    problem(app.get("/readyz").await, 503, "not-ready").await;
    assert_eq!(app.get("/livez").await.status(), 200);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn metrics_count_requests_per_route_and_group_commits(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    let text = app.get("/metrics").await.text().await.expect("metrics");

    assert!(text.contains("http_request_duration_seconds"), "{text}");
    assert!(
        text.contains("route=\"/v1/ledgers/{ledger}/transfers\""),
        "{text}"
    );
    assert!(text.contains("tally_group_commit_items"), "{text}");
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn unknown_paths_and_methods_answer_problems(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    problem(app.get("/v1/nothing").await, 404, "not-found").await;
    problem(app.get("/v1/ledgers").await, 405, "method-not-allowed").await;
    problem(
        app.post(
            &format!("/v1/ledgers/main/transfers/{}/post", "not-a-uuid"),
            json!({}),
        )
        .await,
        400,
        "bad-request",
    )
    .await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn shutdown_answers_every_accepted_command(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    let requests: Vec<_> = (0..40)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/v1/ledgers/main/transfers"))
                .json(&transfer(
                    Uuid::now_v7(),
                    "equity:capital",
                    "assets:bank",
                    "1",
                ));
            tokio::spawn(request.send())
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let store = app.store.clone();
    app.stop().await;

    let mut accepted = 0;
    for request in requests {
        match request.await.expect("the request task does not panic") {
            Ok(response) => {
                assert_eq!(response.status(), 201, "an answered command was accepted");
                accepted += 1;
            }
            // Sent after the listener closed: refused before anything was decided.
            Err(error) => assert!(error.is_connect() || error.is_request(), "{error:?}"),
        }
    }
    let after = store
        .stream_head("main")
        .await
        .expect("the store answers")
        .map_or(0, |(version, _)| version);
    assert_eq!(
        after - before,
        accepted,
        "every written command was answered"
    );
}
