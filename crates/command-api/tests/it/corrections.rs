//! Reversals and reverse-and-rebook.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestApp, bal, balance, created, problem, transfer};

async fn spend(app: &TestApp, amount: &str) -> Uuid {
    let id = Uuid::now_v7();
    created(
        app.post(
            "/v1/ledgers/main/transfers",
            transfer(id, "assets:cash", "expenses:food", amount),
        )
        .await,
    )
    .await;
    id
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_transfer_is_reversed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let original = spend(&app, "700").await;
    let reversal = Uuid::now_v7();

    let body = created(
        app.post(
            &format!("/v1/ledgers/main/transfers/{original}/reverse"),
            json!({"reversal_id": reversal, "reason": "duplicate_charge"}),
        )
        .await,
    )
    .await;

    assert_eq!(body["transfer_id"], reversal.to_string());
    assert_eq!(body["status"], "posted");
    assert_eq!(balance(&body, "assets:cash"), bal("10000", "0", "10000"));
    assert_eq!(balance(&body, "expenses:food"), bal("0", "0", "0"));
    assert!(body.get("rebook").is_none(), "{body}");

    // A reversed transfer cannot be reversed again.
    let before = app.version("main").await;
    problem(
        app.post(
            &format!("/v1/ledgers/main/transfers/{original}/reverse"),
            json!({"reversal_id": Uuid::now_v7(), "reason": "duplicate_charge"}),
        )
        .await,
        409,
        "not-reversible",
    )
    .await;
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_transfer_is_reversed_and_rebooked_atomically(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let original = spend(&app, "700").await;
    let before = app.version("main").await;
    let (reversal, rebook) = (Uuid::now_v7(), Uuid::now_v7());

    let body = created(
        app.post(
            &format!("/v1/ledgers/main/transfers/{original}/reverse"),
            json!({
                "reversal_id": reversal,
                "reason": "wrong_amount",
                "rebook": transfer(rebook, "assets:cash", "expenses:food", "70"),
            }),
        )
        .await,
    )
    .await;

    assert_eq!(body["transfer_id"], reversal.to_string());
    assert_eq!(body["rebook"]["transfer_id"], rebook.to_string());
    assert_eq!(body["rebook"]["status"], "posted");
    assert_eq!(
        balance(&body["rebook"], "assets:cash"),
        bal("9930", "0", "9930")
    );
    assert_eq!(
        balance(&body["rebook"], "expenses:food"),
        bal("70", "0", "70")
    );
    assert!(body["version"].as_i64() > Some(before));
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_rebook_that_breaks_a_rule_leaves_the_original_untouched(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let original = spend(&app, "700").await;
    let before = app.version("main").await;

    let body = problem(
        app.post(
            &format!("/v1/ledgers/main/transfers/{original}/reverse"),
            json!({
                "reversal_id": Uuid::now_v7(),
                "reason": "wrong_amount",
                "rebook": transfer(Uuid::now_v7(), "assets:cash", "expenses:food", "99999"),
            }),
        )
        .await,
        409,
        "limit-exceeded",
    )
    .await;
    assert!(
        body["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("rebook.")),
        "{body}"
    );
    assert_eq!(app.version("main").await, before);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn reversing_an_unknown_transfer_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;

    let body = problem(
        app.post(
            &format!("/v1/ledgers/main/transfers/{}/reverse", Uuid::now_v7()),
            json!({"reversal_id": Uuid::now_v7(), "reason": "oops"}),
        )
        .await,
        404,
        "transfer-not-found",
    )
    .await;
    assert_eq!(body["field"], "id");
    problem(
        app.post(
            &format!("/v1/ledgers/main/transfers/{}/reverse", Uuid::now_v7()),
            json!({"reversal_id": Uuid::now_v7(), "reason": "Not A Code"}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(app.version("main").await, before);
}
