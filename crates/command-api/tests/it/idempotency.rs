//! Idempotency by transfer id: the same request answers the original outcome, another body conflicts.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestApp, created, problem, transfer};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_exact_retry_answers_the_original_status_and_body(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let id = Uuid::now_v7();
    let request = transfer(id, "assets:cash", "expenses:food", "500");

    let first = app
        .post("/v1/ledgers/main/transfers", request.clone())
        .await;
    assert_eq!(first.headers().get("tally-idempotent-replay"), None);
    let first = created(first).await;
    // Other writes happen in between; the retry still answers what the first request answered.
    created(
        app.post(
            "/v1/ledgers/main/transfers",
            transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1"),
        )
        .await,
    )
    .await;
    let after = app.version("main").await;

    let again = app.post("/v1/ledgers/main/transfers", request).await;
    assert_eq!(
        again
            .headers()
            .get("tally-idempotent-replay")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let again: Value = created(again).await;

    assert_eq!(again, first);
    assert_eq!(app.version("main").await, after, "a retry takes no effect");
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_same_id_with_another_body_conflicts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let id = Uuid::now_v7();
    created(
        app.post(
            "/v1/ledgers/main/transfers",
            transfer(id, "assets:cash", "expenses:food", "500"),
        )
        .await,
    )
    .await;
    let before = app.version("main").await;

    let body = problem(
        app.post(
            "/v1/ledgers/main/transfers",
            transfer(id, "assets:cash", "expenses:food", "501"),
        )
        .await,
        409,
        "transfer-id-conflict",
    )
    .await;
    assert_eq!(body["field"], "id");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("different body")),
        "{body}"
    );
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_retried_reversal_answers_the_original(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let original = Uuid::now_v7();
    created(
        app.post(
            "/v1/ledgers/main/transfers",
            transfer(original, "assets:cash", "expenses:food", "500"),
        )
        .await,
    )
    .await;
    let request = json!({"reversal_id": Uuid::now_v7(), "reason": "oops"});
    let path = format!("/v1/ledgers/main/transfers/{original}/reverse");

    let first = created(app.post(&path, request.clone()).await).await;
    let again = created(app.post(&path, request).await).await;

    assert_eq!(again, first);
}
