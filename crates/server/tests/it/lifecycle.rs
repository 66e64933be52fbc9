//! Graceful shutdown: in-flight requests finish, new connections are refused.

use std::time::Duration;

use crate::support::{ClientKind, TestServer};

async fn in_flight_request_finishes_and_new_connections_are_refused(kind: ClientKind) {
    let mut server = TestServer::start().await;
    let client = server.client(kind);
    let slow = tokio::spawn(client.get(server.url("/slow?ms=1500")).send());
    tokio::time::timeout(Duration::from_secs(5), server.slow_entered.notified())
        .await
        .expect("the slow handler starts");

    server.begin_shutdown();

    // The listener closes as shutdown begins, while the slow request is still being served.
    let refused = async {
        loop {
            match tokio::net::TcpStream::connect(server.addr).await {
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), refused)
        .await
        .expect("new connections are refused soon after shutdown begins");
    assert!(!slow.is_finished(), "the slow request is still in flight");

    let response = slow
        .await
        .expect("the request task does not panic")
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("a body"), "done");

    server.stopped().await.expect("a clean stop");
    let error = server
        .client(kind)
        .get(server.url("/livez"))
        .send()
        .await
        .expect_err("nothing listens any more");
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn graceful_shutdown_over_http1() {
    in_flight_request_finishes_and_new_connections_are_refused(ClientKind::Http1).await;
}

#[tokio::test]
async fn graceful_shutdown_over_http2() {
    in_flight_request_finishes_and_new_connections_are_refused(ClientKind::Auto).await;
}

#[tokio::test]
async fn a_request_outliving_the_grace_period_is_cut_off() {
    let mut server = TestServer::start_with(crate::support::Options {
        shutdown_grace: Duration::from_millis(200),
        ..crate::support::Options::default()
    })
    .await;
    let slow = tokio::spawn(server.client.get(server.url("/slow?ms=10000")).send());
    tokio::time::timeout(Duration::from_secs(5), server.slow_entered.notified())
        .await
        .expect("the slow handler starts");

    let started = std::time::Instant::now();
    server.begin_shutdown();
    server.stopped().await.expect("a clean stop");

    assert!(started.elapsed() < Duration::from_secs(5));
    let outcome = slow.await.expect("the request task does not panic");
    assert!(outcome.is_err(), "{outcome:?}");
}
