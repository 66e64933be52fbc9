//! Fallbacks, request ids and the request timeout.

use std::time::Duration;

use tally_server::LayerConfig;

use crate::support::{Options, TestServer, expect_problem};

#[tokio::test]
async fn an_unknown_path_is_not_found() {
    let server = TestServer::start().await;

    let response = server
        .client
        .get(server.url("/no/such/thing"))
        .send()
        .await
        .expect("a response");

    expect_problem(response, 404, "not-found").await;
}

#[tokio::test]
async fn a_known_path_with_another_method_is_method_not_allowed() {
    let server = TestServer::start().await;

    let response = server
        .client
        .get(server.url("/echo"))
        .send()
        .await
        .expect("a response");

    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(allow.contains("POST"), "allow: {allow:?}");
    expect_problem(response, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn a_request_id_is_generated_and_echoed() {
    let server = TestServer::start().await;

    let response = server
        .client
        .get(server.url("/request-id"))
        .send()
        .await
        .expect("a response");

    let header = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an x-request-id header")
        .to_owned();
    let seen_by_handler = response.text().await.expect("a body");
    assert_eq!(header, seen_by_handler);
    let uuid = uuid::Uuid::parse_str(&header).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 7);
}

#[tokio::test]
async fn a_sane_incoming_request_id_is_kept() {
    let server = TestServer::start().await;

    let response = server
        .client
        .get(server.url("/request-id"))
        .header("x-request-id", "client-abc-123")
        .send()
        .await
        .expect("a response");

    assert_eq!(response.headers()["x-request-id"], "client-abc-123");
    assert_eq!(response.text().await.expect("a body"), "client-abc-123");
}

#[tokio::test]
async fn an_insane_incoming_request_id_is_replaced() {
    let server = TestServer::start().await;

    for incoming in ["a".repeat(65), "has space".to_owned()] {
        let response = server
            .client
            .get(server.url("/request-id"))
            .header("x-request-id", &incoming)
            .send()
            .await
            .expect("a response");

        let echoed = response.headers()["x-request-id"]
            .to_str()
            .expect("visible ASCII")
            .to_owned();
        assert_ne!(echoed, incoming);
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }
}

#[tokio::test]
async fn error_answers_carry_the_request_id_too() {
    let server = TestServer::start().await;

    let response = server
        .client
        .get(server.url("/nowhere"))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .expect("a response");

    assert_eq!(response.headers()["x-request-id"], "trace-me");
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_gets_the_timeout_problem() {
    let server = TestServer::start_with(Options {
        layers: LayerConfig {
            request_timeout: Duration::from_millis(200),
            ..LayerConfig::default()
        },
        ..Options::default()
    })
    .await;

    let started = std::time::Instant::now();
    let response = server
        .client
        .get(server.url("/slow?ms=5000"))
        .send()
        .await
        .expect("a response");

    assert!(started.elapsed() < Duration::from_secs(4));
    let problem = expect_problem(response, 503, "timeout").await;
    // A 5xx says nothing about internals, including the configured timeout.
    assert!(!problem.detail.unwrap_or_default().contains("200"));
}

#[tokio::test]
async fn a_bad_path_parameter_is_a_problem_too() {
    let server = TestServer::start().await;

    // `/slow` takes `ms` as a number; a query string that does not parse is axum's rejection.
    let response = server
        .client
        .get(server.url("/slow?ms=soon"))
        .send()
        .await
        .expect("a response");

    expect_problem(response, 400, "bad-request").await;
}
