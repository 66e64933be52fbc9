//! `/metrics`, `/livez` and `/readyz`.

use std::sync::atomic::Ordering;

use crate::support::{TestServer, expect_problem};

#[tokio::test]
async fn metrics_are_labelled_with_the_route_template_never_the_raw_path() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/things/4242"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 200);
    let response = server
        .client
        .get(server.url("/unknown-7a1c"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 404);

    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("a body");

    let counted = text.lines().any(|line| {
        line.starts_with("http_requests_total{")
            && line.contains(r#"route="/things/{id}""#)
            && line.contains(r#"method="GET""#)
            && line.contains(r#"status="200""#)
    });
    assert!(counted, "{text}");
    let bucketed = text.lines().any(|line| {
        line.starts_with("http_request_duration_seconds_bucket{")
            && line.contains(r#"route="/things/{id}""#)
            && line.contains(r#"le="0.001""#)
    });
    assert!(bucketed, "{text}");
    assert!(
        text.lines()
            .any(|line| line.starts_with("http_requests_total{")
                && line.contains(r#"route="unmatched""#)
                && line.contains(r#"status="404""#)),
        "{text}"
    );
    assert!(!text.contains("4242"), "{text}");
    assert!(!text.contains("unknown-7a1c"), "{text}");
}

#[tokio::test]
async fn livez_answers_while_the_process_serves() {
    let server = TestServer::start().await;
    server.ready.store(false, Ordering::SeqCst);

    let response = server
        .client
        .get(server.url("/livez"))
        .send()
        .await
        .expect("a response");

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn readyz_follows_the_readiness_check() {
    let server = TestServer::start().await;

    let response = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(body, serde_json::json!({"status": "ready"}));

    server.ready.store(false, Ordering::SeqCst);
    let response = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("a response");
    expect_problem(response, 503, "not-ready").await;
}
