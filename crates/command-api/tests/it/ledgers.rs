//! Ledgers, accounts and period close: the happy paths.

use serde_json::json;
use sqlx::PgPool;

use crate::support::{TestApp, created, ok, problem};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_ledger_is_created_with_its_consistency_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let response = app
        .post("/v1/ledgers", json!({"id": "main", "name": "Main books"}))
        .await;
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/v1/ledgers/main")
    );
    let body = created(response).await;

    assert_eq!(
        body,
        json!({"ledger": "main", "version": 1, "name": "Main books"})
    );
    assert_eq!(app.version("main").await, 1);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_second_ledger_with_the_same_id_conflicts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    created(
        app.post("/v1/ledgers", json!({"id": "main", "name": "A"}))
            .await,
    )
    .await;

    problem(
        app.post("/v1/ledgers", json!({"id": "main", "name": "B"}))
            .await,
        409,
        "ledger-already-exists",
    )
    .await;
    assert_eq!(app.version("main").await, 1);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_invalid_ledger_id_names_the_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let body = problem(
        app.post("/v1/ledgers", json!({"id": "Main Books", "name": "A"}))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(body["field"], "id");
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_account_is_opened_frozen_unfrozen_limited_and_closed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    created(
        app.post("/v1/ledgers", json!({"id": "main", "name": "Main"}))
            .await,
    )
    .await;

    let opened = created(
        app.post(
            "/v1/ledgers/main/accounts",
            json!({"code": "assets:bank", "type": "asset", "currency": "USD", "scale": 2,
                   "limits": {"floor": "0", "ceiling": "1000000"}, "metadata": {"iban": "DE00"}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        opened,
        json!({"ledger": "main", "version": 2, "code": "assets:bank"})
    );

    let frozen = ok(app
        .patch(
            "/v1/ledgers/main/accounts/assets:bank",
            json!({"status": "frozen"}),
        )
        .await)
    .await;
    assert_eq!(frozen["version"], 3);

    // Unfreezing and new limits and metadata in one request: one atomic batch of commands.
    let changed = ok(app
        .patch(
            "/v1/ledgers/main/accounts/assets:bank",
            json!({"status": "open", "limits": {"floor": "-100"}, "metadata": {"iban": "DE01"}}),
        )
        .await)
    .await;
    assert_eq!(changed["version"], 6);

    let closed = ok(app
        .patch(
            "/v1/ledgers/main/accounts/assets:bank",
            json!({"status": "closed"}),
        )
        .await)
    .await;
    assert_eq!(closed["version"], 7);
    assert_eq!(app.version("main").await, 7);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_account_change_applies_all_or_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    // New metadata is valid, but a non-empty account cannot close: neither change applies.
    problem(
        app.patch(
            "/v1/ledgers/main/accounts/assets:cash",
            json!({"metadata": {"note": "x"}, "status": "closed"}),
        )
        .await,
        409,
        "account-not-empty",
    )
    .await;
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn changing_an_unknown_account_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    problem(
        app.patch(
            "/v1/ledgers/main/accounts/assets:nowhere",
            json!({"status": "frozen"}),
        )
        .await,
        404,
        "unknown-account",
    )
    .await;
    problem(
        app.patch("/v1/ledgers/main/accounts/assets:cash", json!({}))
            .await,
        422,
        "empty-update",
    )
    .await;
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_period_is_closed_and_then_locks_business_time(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    let closed = ok(app
        .post(
            "/v1/ledgers/main/periods/close",
            json!({"through": "2020-12-31T23:59:59Z"}),
        )
        .await)
    .await;
    assert_eq!(closed["closed_through"], "2020-12-31T23:59:59Z");
    let before = app.version("main").await;

    let mut backdated =
        crate::support::transfer(uuid::Uuid::now_v7(), "assets:cash", "expenses:food", "5");
    backdated["effective_at"] = json!("2020-06-01T00:00:00Z");
    problem(
        app.post("/v1/ledgers/main/transfers", backdated).await,
        409,
        "period-closed",
    )
    .await;
    assert_eq!(app.version("main").await, before);
}
