//! The OpenAPI document: it parses, is OpenAPI 3.1, and describes every route.

use serde_json::Value;
use sqlx::PgPool;

use crate::support::TestApp;

const ROUTES: [(&str, &str); 14] = [
    ("post", "/v1/ledgers"),
    ("post", "/v1/ledgers/{ledger}/periods/close"),
    ("post", "/v1/ledgers/{ledger}/accounts"),
    ("patch", "/v1/ledgers/{ledger}/accounts/{code}"),
    ("post", "/v1/ledgers/{ledger}/transfers"),
    ("post", "/v1/ledgers/{ledger}/transfers/batch"),
    ("post", "/v1/ledgers/{ledger}/transfers/{id}/post"),
    ("post", "/v1/ledgers/{ledger}/transfers/{id}/void"),
    ("post", "/v1/ledgers/{ledger}/transfers/{id}/reverse"),
    ("get", "/livez"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_document_is_openapi_3_1_and_lists_every_route(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let doc: Value = response.json().await.expect("a JSON document");

    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing"
        );
    }
    assert_eq!(paths.len(), 14, "{:?}", paths.keys().collect::<Vec<_>>());

    // Every reference resolves to a component schema.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
    for name in [
        "Problem",
        "NewTransfer",
        "TransferAnswer",
        "BatchAnswer",
        "Balance",
    ] {
        assert!(schemas.contains_key(name), "{name} is not described");
    }
    // Amounts are strings in the description too.
    assert_eq!(schemas["Leg"]["properties"]["amount"]["type"], "string");
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_docs_page_is_self_contained(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/html"))
    );
    let html = response.text().await.expect("a page");
    assert!(html.contains("/openapi.json"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
}
