//! Every bad input answers the right 4xx with a problem+json of a stable type, and the ledger is unchanged.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestApp, ok, problem, transfer};

const TRANSFERS: &str = "/v1/ledgers/main/transfers";

/// Posts `body` as a transfer, expects the problem, and checks that the ledger did not move.
async fn refused(app: &TestApp, body: Value, status: u16, slug: &'static str) -> Value {
    let before = app.version("main").await;
    let problem = problem(app.post(TRANSFERS, body).await, status, slug).await;
    assert_eq!(
        app.version("main").await,
        before,
        "{slug} changed the ledger"
    );
    problem
}

fn with_amount(amount: Value) -> Value {
    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");
    body["legs"][0]["amount"] = amount;
    body
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn malformed_json_is_a_bad_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    let response = app
        .client
        .post(app.url(TRANSFERS))
        .header("content-type", "application/json")
        .body(r#"{"id": "#)
        .send()
        .await
        .expect("answered");

    problem(response, 400, "malformed-json").await;
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_body_that_is_not_json_is_an_unsupported_media_type(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;
    let body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1").to_string();

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app.client.post(app.url(TRANSFERS)).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("answered");
        problem(response, 415, "unsupported-media-type").await;
    }
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_oversize_body_is_refused(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |config| config.http.body_limit = 4096).await;
    app.main_ledger().await;
    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");
    body["description"] = json!("x".repeat(5000));

    let problem = refused(&app, body, 413, "payload-too-large").await;
    assert_eq!(problem["limit_bytes"], 4096);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn unknown_fields_are_refused_naming_the_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");
    body["legs"][1]["memo"] = json!("hi");
    let problem = refused(&app, body, 422, "invalid-body").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("memo")),
        "{problem}"
    );
    assert_eq!(problem["field"], "legs[1].memo");

    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");
    body["amount"] = json!("1");
    refused(&app, body, 422, "invalid-body").await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn amounts_must_be_strings_of_whole_positive_minor_units(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    // JSON numbers, integral or not, never reach the domain.
    for number in [json!(100), json!(1.5), json!(1e3)] {
        let problem = refused(&app, with_amount(number), 422, "invalid-body").await;
        assert_eq!(problem["field"], "legs[0].amount", "{problem}");
    }
    // Strings that are not canonical positive integers, or do not fit 128 bits.
    for text in [
        "1.5",
        "1e3",
        "-5",
        "0",
        "007",
        "",
        " 1",
        &"9".repeat(60),
        "170141183460469231731687303715884105728",
    ] {
        let problem = refused(&app, with_amount(json!(text)), 422, "invalid-amount").await;
        assert_eq!(problem["field"], "legs[0].amount", "{text:?}: {problem}");
    }
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn amounts_that_overflow_together_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let max = i128::MAX.to_string();

    let body = json!({
        "id": Uuid::now_v7(),
        "legs": [
            {"account": "expenses:food", "side": "debit", "amount": max, "currency": "USD"},
            {"account": "assets:bank", "side": "debit", "amount": max, "currency": "USD"},
            {"account": "equity:capital", "side": "credit", "amount": max, "currency": "USD"},
        ],
    });
    refused(&app, body, 422, "amount-overflow").await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn unbalanced_legs_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "10");
    body["legs"][1]["amount"] = json!("11");
    refused(&app, body, 422, "unbalanced-transfer").await;

    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "10");
    if let Some(legs) = body["legs"].as_array_mut() {
        legs.truncate(1);
    }
    refused(&app, body, 422, "too-few-legs").await;

    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "10");
    body["legs"][1]["currency"] = json!("EUR");
    refused(&app, body, 422, "currency-mismatch").await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_unknown_ledger_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");

    for path in [
        "/v1/ledgers/nowhere/transfers",
        "/v1/ledgers/NOT%20AN%20ID/transfers",
    ] {
        problem(app.post(path, body.clone()).await, 404, "ledger-not-found").await;
    }
    problem(
        app.post(
            "/v1/ledgers/nowhere/accounts",
            json!({"code": "a", "type": "asset", "currency": "USD", "scale": 2}),
        )
        .await,
        404,
        "ledger-not-found",
    )
    .await;
    assert_eq!(app.version("nowhere").await, 0);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_unknown_account_names_its_leg(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    let body = transfer(Uuid::now_v7(), "assets:cash", "expenses:nowhere", "1");
    let problem = refused(&app, body, 422, "unknown-account").await;
    assert_eq!(problem["field"], "legs[1].account");

    let body = transfer(Uuid::now_v7(), "assets:cash", "Not:A:Code", "1");
    let problem = refused(&app, body, 422, "invalid-field").await;
    assert_eq!(problem["field"], "legs[1].account");
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn frozen_and_closed_accounts_refuse_postings(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    ok(app
        .patch(
            "/v1/ledgers/main/accounts/assets:cash",
            json!({"status": "frozen"}),
        )
        .await)
    .await;
    ok(app
        .patch(
            "/v1/ledgers/main/accounts/assets:bank",
            json!({"status": "closed"}),
        )
        .await)
    .await;

    let body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");
    refused(&app, body, 409, "account-frozen").await;
    let body = transfer(Uuid::now_v7(), "equity:capital", "assets:bank", "1");
    refused(&app, body, 409, "account-closed").await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_limit_is_never_crossed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    let body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "10001");
    let problem = refused(&app, body, 409, "limit-exceeded").await;
    assert_eq!(problem["field"], "legs[0].amount");
    assert_eq!(
        problem["detail"],
        "legs[0].amount: would take the available balance of assets:cash to -0.01, \
         below its floor of 0.00"
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn account_requests_are_validated_field_by_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;
    let account = |patch: Value| {
        let mut body =
            json!({"code": "assets:new", "type": "asset", "currency": "USD", "scale": 2});
        if let (Some(body), Some(patch)) = (body.as_object_mut(), patch.as_object()) {
            body.extend(patch.clone());
        }
        body
    };

    for (patch, status, slug, field) in [
        (json!({"code": "Bad Code"}), 422, "invalid-field", "code"),
        (json!({"currency": "usd"}), 422, "invalid-field", "currency"),
        (json!({"scale": 19}), 422, "invalid-field", "scale"),
        (
            json!({"scale": 8}),
            409,
            "currency-scale-mismatch",
            "currency.scale",
        ),
        (
            json!({"limits": {"floor": 0}}),
            422,
            "invalid-body",
            "limits.floor",
        ),
        (
            json!({"limits": {"floor": "1.5"}}),
            422,
            "invalid-field",
            "limits.floor",
        ),
        (
            json!({"limits": {"floor": "10", "ceiling": "5"}}),
            422,
            "invalid-field",
            "limits",
        ),
        (json!({"type": "cash"}), 422, "invalid-body", "type"),
        (
            json!({"code": "assets:cash"}),
            409,
            "account-already-exists",
            "code",
        ),
    ] {
        let body = problem(
            app.post("/v1/ledgers/main/accounts", account(patch.clone()))
                .await,
            status,
            slug,
        )
        .await;
        assert_eq!(body["field"], field, "{patch}: {body}");
    }
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_string_holding_nul_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let mut body = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");
    body["description"] = json!("before\u{0}after");
    let problem = refused(&app, body, 422, "invalid-body").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("NUL")),
        "{problem}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_null_member_of_a_patch_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;
    for member in ["status", "limits", "metadata"] {
        let response = app
            .patch(
                "/v1/ledgers/main/accounts/assets:cash",
                json!({ member: null }),
            )
            .await;
        let problem = problem(response, 422, "invalid-body").await;
        assert_eq!(problem["field"], member, "{problem}");
    }
    assert_eq!(app.version("main").await, before);
    app.stop().await;
}
