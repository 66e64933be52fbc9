//! Two-phase transfers: reserve, then post in full or in part, void, or let expire.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestApp, bal, balance, created, ok, problem, transfer};

fn pending(id: Uuid, amount: &str, timeout_secs: i64) -> Value {
    let mut body = transfer(id, "assets:cash", "expenses:food", amount);
    body["pending"] = json!({"timeout_secs": timeout_secs});
    body
}

async fn reserve(app: &TestApp, amount: &str, timeout_secs: i64) -> Uuid {
    let id = Uuid::now_v7();
    let body = created(
        app.post(
            "/v1/ledgers/main/transfers",
            pending(id, amount, timeout_secs),
        )
        .await,
    )
    .await;
    assert_eq!(body["status"], "pending");
    // The reservation counts against what cash may still spend.
    assert_eq!(balance(&body, "assets:cash"), bal("10000", "-1000", "9000"));
    id
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_pending_transfer_is_posted_in_full(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let id = reserve(&app, "1000", 3600).await;

    // No body at all: post the full amounts.
    let response = app
        .client
        .post(app.url(&format!("/v1/ledgers/main/transfers/{id}/post")))
        .send()
        .await
        .expect("answered");
    let body = ok(response).await;

    assert_eq!(body["status"], "posted");
    assert_eq!(balance(&body, "assets:cash"), bal("9000", "0", "9000"));
    assert_eq!(balance(&body, "expenses:food"), bal("1000", "0", "1000"));
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_pending_transfer_is_posted_in_part_and_the_rest_released(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let id = reserve(&app, "1000", 3600).await;

    let body = ok(app
        .post(
            &format!("/v1/ledgers/main/transfers/{id}/post"),
            json!({"amounts": ["400", "400"]}),
        )
        .await)
    .await;

    assert_eq!(body["status"], "posted");
    assert_eq!(balance(&body, "assets:cash"), bal("9600", "0", "9600"));
    assert_eq!(balance(&body, "expenses:food"), bal("400", "0", "400"));
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_pending_transfer_is_voided(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let id = reserve(&app, "1000", 3600).await;

    let body = ok(app
        .post(&format!("/v1/ledgers/main/transfers/{id}/void"), json!({}))
        .await)
    .await;

    assert_eq!(body["status"], "voided");
    assert_eq!(balance(&body, "assets:cash"), bal("10000", "0", "10000"));
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn posting_more_than_reserved_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let id = reserve(&app, "1000", 3600).await;
    let before = app.version("main").await;

    problem(
        app.post(
            &format!("/v1/ledgers/main/transfers/{id}/post"),
            json!({"amounts": ["1001", "1001"]}),
        )
        .await,
        422,
        "post-exceeds-pending",
    )
    .await;
    problem(
        app.post(
            &format!("/v1/ledgers/main/transfers/{id}/post"),
            json!({"amounts": ["1"]}),
        )
        .await,
        422,
        "post-amounts-mismatch",
    )
    .await;
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn posting_or_voiding_an_unknown_transfer_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;
    let unknown = Uuid::now_v7();

    for action in ["post", "void"] {
        let body = problem(
            app.post(
                &format!("/v1/ledgers/main/transfers/{unknown}/{action}"),
                json!({}),
            )
            .await,
            404,
            "transfer-not-found",
        )
        .await;
        assert_eq!(body["field"], "id");
    }
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn posting_or_voiding_a_final_transfer_conflicts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let voided = reserve(&app, "1000", 3600).await;
    ok(app
        .post(
            &format!("/v1/ledgers/main/transfers/{voided}/void"),
            json!({}),
        )
        .await)
    .await;
    let posted = Uuid::now_v7();
    created(
        app.post(
            "/v1/ledgers/main/transfers",
            transfer(posted, "assets:cash", "expenses:food", "1"),
        )
        .await,
    )
    .await;
    let before = app.version("main").await;

    for id in [voided, posted] {
        for action in ["post", "void"] {
            problem(
                app.post(
                    &format!("/v1/ledgers/main/transfers/{id}/{action}"),
                    json!({}),
                )
                .await,
                409,
                "transfer-not-pending",
            )
            .await;
        }
    }
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_expired_pending_transfer_can_no_longer_be_posted_or_voided(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let id = reserve(&app, "1000", 1).await;
    let before = app.version("main").await;

    tokio::time::sleep(Duration::from_millis(1_300)).await;

    for action in ["post", "void"] {
        problem(
            app.post(
                &format!("/v1/ledgers/main/transfers/{id}/{action}"),
                json!({}),
            )
            .await,
            409,
            "pending-expired",
        )
        .await;
    }
    assert_eq!(app.version("main").await, before);
}
