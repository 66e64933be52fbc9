//! `ApiJson`: each rejection is problem+json with the right status and type.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;
use tally_server::LayerConfig;

use crate::support::{ClientKind, Options, Order, TestServer, Tls, expect_problem};

const SMALL_LIMIT: usize = 1024;

async fn small_limit_server(tls: Tls) -> TestServer {
    TestServer::start_with(Options {
        tls,
        layers: LayerConfig {
            body_limit: SMALL_LIMIT,
            ..LayerConfig::default()
        },
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_valid_body_reaches_the_handler() {
    let server = TestServer::start().await;
    let order = json!({"name": "coffee", "count": 2, "tags": ["hot"]});

    let response = server
        .client
        .post(server.url("/echo"))
        .json(&order)
        .send()
        .await
        .expect("a response");

    assert_eq!(response.status(), 200);
    let echoed: Order = response.json().await.expect("an order");
    assert_eq!(
        echoed,
        Order {
            name: "coffee".into(),
            count: 2,
            tags: vec!["hot".into()]
        }
    );
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_unsupported_media_type() {
    let server = TestServer::start().await;

    for content_type in [
        Some("text/plain"),
        Some("text/json"),
        Some("application/jsonx"),
        Some("application/json garbage"),
        Some("json"),
        None,
    ] {
        let mut request = server
            .client
            .post(server.url("/echo"))
            .body(r#"{"name":"coffee","count":2}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("a response");
        expect_problem(response, 415, "unsupported-media-type").await;
    }
}

#[tokio::test]
async fn json_with_parameters_or_a_json_suffix_is_accepted() {
    let server = TestServer::start().await;

    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ] {
        let response = server
            .client
            .post(server.url("/echo"))
            .header("content-type", content_type)
            .body(r#"{"name":"coffee","count":2}"#)
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status(), 200, "{content_type}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_malformed_json() {
    let server = TestServer::start().await;

    for body in [r#"{"name": "coffee", "count": "#, "", "not json"] {
        let response = server
            .client
            .post(server.url("/echo"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("a response");
        expect_problem(response, 400, "malformed-json").await;
    }
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_an_invalid_body_naming_the_field() {
    let server = TestServer::start().await;

    for (body, expected) in [
        (
            json!({"name": "coffee", "count": 2, "colour": "brown"}),
            "unknown field `colour`",
        ),
        (
            json!({"name": "coffee", "count": "two"}),
            "count: invalid type: string \"two\"",
        ),
        (json!({"name": "coffee"}), "missing field `count`"),
        (
            json!({"name": "coffee", "count": 1, "tags": ["ok", 7]}),
            "tags[1]: invalid type: integer `7`",
        ),
        (
            json!("coffee"),
            "invalid type: string \"coffee\", expected struct",
        ),
    ] {
        let response = server
            .client
            .post(server.url("/echo"))
            .json(&body)
            .send()
            .await
            .expect("a response");
        let problem = expect_problem(response, 422, "invalid-body").await;
        let detail = problem.detail.unwrap_or_default();
        assert!(detail.contains(expected), "{body}: {detail}");
        assert!(!detail.contains("Failed to deserialize"), "{detail}");
        assert!(!detail.contains("Order"), "no Rust type names: {detail}");
    }
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_payload_too_large() {
    let server = small_limit_server(Tls::Dev).await;
    let big = json!({"name": "x".repeat(SMALL_LIMIT), "count": 1});

    let response = server
        .client
        .post(server.url("/echo"))
        .json(&big)
        .send()
        .await
        .expect("a response");

    let problem = expect_problem(response, 413, "payload-too-large").await;
    assert_eq!(problem.extensions["limit_bytes"], SMALL_LIMIT);
}

#[tokio::test]
async fn a_body_just_under_the_limit_is_accepted() {
    let server = small_limit_server(Tls::Dev).await;
    let body = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(SMALL_LIMIT - 30));
    assert!(body.len() <= SMALL_LIMIT);

    let response = server
        .client
        .post(server.url("/echo"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("a response");

    assert_eq!(response.status(), 200);
}

/// A chunked body declares no length, so it is cut off while streaming, not refused up front.
#[tokio::test]
async fn a_streamed_body_over_the_limit_is_payload_too_large() {
    let server = small_limit_server(Tls::Plain).await;
    let addr = server.addr;

    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("a read timeout");
        let mut request = String::from(
            "POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        );
        let chunk = "x".repeat(512);
        for _ in 0..4 {
            request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        request.push_str("0\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        // The server may close as soon as it has answered; what was read until then is enough.
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("the raw client does not panic");

    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.contains("https://tally.dev/problems/payload-too-large"),
        "{answer}"
    );
}

/// With the default 16 MiB limit, a 40 MiB body is answered from its `content-length` alone, over both
/// protocols, before the client has finished sending it.
#[tokio::test]
async fn a_huge_body_is_refused_without_being_read() {
    let server = TestServer::start().await;

    for kind in [ClientKind::Auto, ClientKind::Http1] {
        let response = server
            .client(kind)
            .post(server.url("/echo"))
            .header("content-type", "application/json")
            .body(vec![b' '; 40 * 1024 * 1024])
            .send()
            .await
            .expect("an answer, not a broken connection");

        let problem = expect_problem(response, 413, "payload-too-large").await;
        assert_eq!(
            problem.extensions["limit_bytes"],
            16 * 1024 * 1024,
            "{kind:?}"
        );
    }
}
