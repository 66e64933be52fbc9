//! Single transfers: accepted with balances, and every event records who, why and the trace.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestApp, bal, balance, created, transfer};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_transfer_answers_the_balances_of_every_account_it_touched(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let before = app.version("main").await;
    let id = Uuid::now_v7();

    let response = app
        .post(
            "/v1/ledgers/main/transfers",
            transfer(id, "assets:cash", "expenses:food", "1250"),
        )
        .await;
    let body = created(response).await;

    assert_eq!(body["transfer_id"], id.to_string());
    assert_eq!(body["status"], "posted");
    assert_eq!(body["ledger"], "main");
    assert_eq!(body["version"], before + 1);
    assert_eq!(balance(&body, "assets:cash"), bal("8750", "0", "8750"));
    assert_eq!(balance(&body, "expenses:food"), bal("1250", "0", "1250"));
    assert_eq!(app.version("main").await, before + 1);
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_multi_leg_transfer_with_description_metadata_and_business_time(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;

    let body = created(
        app.post(
            "/v1/ledgers/main/transfers",
            json!({
                "id": Uuid::now_v7(),
                "legs": [
                    {"account": "assets:cash", "side": "credit", "amount": "300", "currency": "USD"},
                    {"account": "assets:bank", "side": "debit", "amount": "100", "currency": "USD"},
                    {"account": "expenses:food", "side": "debit", "amount": "200", "currency": "USD"},
                ],
                "effective_at": "2026-01-15T12:00:00Z",
                "description": "split",
                "metadata": {"invoice": "42"},
            }),
        )
        .await,
    )
    .await;

    assert_eq!(body["balances"].as_array().map(Vec::len), Some(3));
    assert_eq!(balance(&body, "assets:cash"), bal("9700", "0", "9700"));
    assert_eq!(balance(&body, "assets:bank"), bal("100", "0", "100"));
    assert_eq!(balance(&body, "expenses:food"), bal("200", "0", "200"));
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn events_record_the_anonymous_actor_the_client_the_request_id_and_the_trace(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.main_ledger().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let response = app
        .client
        .post(app.url("/v1/ledgers/main/transfers"))
        .header("x-request-id", "req-abc-1")
        .header("tally-client", "web-ui/1.0")
        .header("traceparent", traceparent)
        .json(&transfer(
            Uuid::now_v7(),
            "assets:cash",
            "expenses:food",
            "1",
        ))
        .send()
        .await
        .expect("answered");
    let body = created(response).await;

    let version = body["version"].as_i64().expect("a version");
    let events = app
        .store
        .read_stream("main", version - 1, 1)
        .await
        .expect("the store answers");
    let meta = &events[0].metadata;
    assert_eq!(meta.actor, "anonymous");
    assert_eq!(meta.client, "web-ui/1.0");
    assert_eq!(meta.correlation_id.as_deref(), Some("req-abc-1"));
    assert_eq!(meta.traceparent.as_deref(), Some(traceparent));

    // Without the headers: an unknown client and no trace context; the generated request id correlates.
    let response = app
        .client
        .post(app.url("/v1/ledgers/main/transfers"))
        .header("traceparent", "garbage")
        .header("tally-client", "has spaces")
        .json(&transfer(
            Uuid::now_v7(),
            "assets:cash",
            "expenses:food",
            "1",
        ))
        .send()
        .await
        .expect("answered");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = created(response).await;
    let version = body["version"].as_i64().expect("a version");
    let events = app
        .store
        .read_stream("main", version - 1, 1)
        .await
        .expect("the store answers");
    let meta = &events[0].metadata;
    assert_eq!(meta.client, "unknown");
    assert_eq!(meta.traceparent, None);
    assert_eq!(meta.correlation_id, request_id);
}
