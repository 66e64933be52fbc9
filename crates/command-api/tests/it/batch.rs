//! The batch endpoint: each item on its own, or all-or-nothing.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestApp, bal, balance, ok, problem, transfer};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn each_item_is_accepted_or_rejected_on_its_own(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    let mut malformed = transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1");
    malformed["legs"][0]["amount"] = json!(1);
    let body = ok(app
        .post(
            "/v1/ledgers/main/transfers/batch",
            json!({"transfers": [
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "100"),
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "999999"),
                transfer(Uuid::now_v7(), "assets:cash", "expenses:nowhere", "1"),
                malformed,
                transfer(Uuid::now_v7(), "assets:cash", "assets:bank", "200"),
            ]}),
        )
        .await)
    .await;

    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 3);
    let results = body["results"].as_array().expect("results");
    let statuses: Vec<_> = results.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(
        statuses,
        [
            Some("accepted"),
            Some("rejected"),
            Some("rejected"),
            Some("rejected"),
            Some("accepted")
        ]
    );
    let type_of = |i: usize| {
        results[i]["problem"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(type_of(1).ends_with("/limit-exceeded"), "{body}");
    assert!(type_of(2).ends_with("/unknown-account"), "{body}");
    assert!(type_of(3).ends_with("/invalid-body"), "{body}");
    assert_eq!(results[1]["problem"]["status"], 409);
    assert_eq!(
        balance(&results[4]["transfer"], "assets:cash"),
        bal("9700", "0", "9700")
    );
    assert_eq!(app.version("main").await, before + 2);
    assert_eq!(body["version"], before + 2);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn an_atomic_batch_is_all_or_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    let body = ok(app
        .post(
            "/v1/ledgers/main/transfers/batch",
            json!({"atomic": true, "transfers": [
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "100"),
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "999999"),
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "100"),
            ]}),
        )
        .await)
    .await;

    assert_eq!(body["accepted"], 0);
    assert_eq!(body["rejected"], 3);
    let results = body["results"].as_array().expect("results");
    assert!(
        results[1]["problem"]["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/limit-exceeded"))
    );
    for i in [0, 2] {
        assert!(
            results[i]["problem"]["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/batch-aborted")),
            "{body}"
        );
        assert_eq!(results[i]["problem"]["failed_index"], 1);
    }
    assert_eq!(app.version("main").await, before);
    assert_eq!(body["version"], before);

    // The same batch without the bad item goes through whole.
    let body = ok(app
        .post(
            "/v1/ledgers/main/transfers/batch",
            json!({"atomic": true, "transfers": [
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "100"),
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "100"),
            ]}),
        )
        .await)
    .await;
    assert_eq!(body["accepted"], 2);
    assert_eq!(app.version("main").await, before + 2);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_malformed_item_aborts_an_atomic_batch_before_anything_is_written(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    let body = ok(app
        .post(
            "/v1/ledgers/main/transfers/batch",
            json!({"atomic": true, "transfers": [
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "100"),
                transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1.5"),
            ]}),
        )
        .await)
    .await;

    let results = body["results"].as_array().expect("results");
    assert!(
        results[1]["problem"]["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-amount"))
    );
    assert_eq!(results[1]["problem"]["field"], "legs[0].amount");
    assert!(
        results[0]["problem"]["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/batch-aborted"))
    );
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_batch_of_thousands_is_answered_per_item(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;
    let transfers: Vec<_> = (0..5_000)
        .map(|_| transfer(Uuid::now_v7(), "equity:capital", "assets:bank", "1"))
        .collect();

    let body = ok(app
        .post(
            "/v1/ledgers/main/transfers/batch",
            json!({"transfers": transfers}),
        )
        .await)
    .await;

    assert_eq!(body["accepted"], 5_000);
    assert_eq!(app.version("main").await, before + 5_000);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_batch_holds_one_to_ten_thousand_items(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    problem(
        app.post("/v1/ledgers/main/transfers/batch", json!({"transfers": []}))
            .await,
        422,
        "too-many-items",
    )
    .await;
    let item = transfer(Uuid::nil(), "assets:cash", "expenses:food", "1");
    let too_many = vec![item; 10_001];
    problem(
        app.post(
            "/v1/ledgers/main/transfers/batch",
            json!({"transfers": too_many}),
        )
        .await,
        422,
        "too-many-items",
    )
    .await;
    problem(
        app.post(
            "/v1/ledgers/nowhere/transfers/batch",
            json!({"transfers": [transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "1")]}),
        )
        .await,
        404,
        "ledger-not-found",
    )
    .await;
    assert_eq!(app.version("main").await, before);
}
