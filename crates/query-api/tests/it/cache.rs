//! The cache: ETags and 304s, invalidation by the event stream, `Cache-Control` per resource,
//! read-your-writes with `Tally-Min-Version`, and live updates.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use sqlx::PgPool;

use crate::support::Stack;

async fn small(stack: &Stack) -> i64 {
    stack.ledger("main").await;
    stack.account("main", "assets:cash", "asset", "USD").await;
    stack
        .account("main", "equity:capital", "equity", "USD")
        .await;
    stack
        .transfer(
            "main",
            "assets:cash",
            "equity:capital",
            100,
            Some("2026-01-15T00:00:00Z"),
        )
        .await
        .1
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn answers_revalidate_by_version_and_new_events_invalidate_them(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let v1 = small(&stack).await;
    let path = "/v1/ledgers/main/accounts/assets:cash";
    let first = stack.read(path, v1).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert_eq!(first.header("cache-control"), Some("private, no-cache"));
    let again = stack.get_with(path, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    // Served from the cache: the hit counter moves.
    let metrics = stack.get("/metrics").await.text;
    assert!(
        metrics.contains("tally_query_cache_requests_total{result=\"hit\"}"),
        "{metrics}"
    );

    // A new transfer: the event stream invalidates the cached answer even for a client that does not
    // send Tally-Min-Version.
    let (_, v2) = stack
        .transfer("main", "assets:cash", "equity:capital", 5, None)
        .await;
    let mut fresh = None;
    for _ in 0..200 {
        let answer = stack.get_with(path, &[("if-none-match", &etag)]).await;
        if answer.status == 200 && answer.body["balances"]["posted"] == "105" {
            fresh = Some(answer);
            break;
        }
        assert!(answer.status == 304 || answer.status == 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = fresh.expect("the new balance within 10 s");
    assert_eq!(fresh.header("etag"), Some(format!("\"{v2}\"").as_str()));

    // Read-your-writes: right after a command, its version is waited for.
    let (_, v3) = stack
        .transfer("main", "assets:cash", "equity:capital", 1, None)
        .await;
    let mine = stack.read(path, v3).await;
    assert_eq!(mine.body["balances"]["posted"], "106");
    assert_eq!(mine.header("tally-version"), Some(v3.to_string().as_str()));

    // Cache-Control fits the resource: inside a closed period nothing can change any more.
    let close = stack
        .post(
            "/v1/ledgers/main/periods/close",
            json!({"through": "2026-01-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(close.status, 200, "{}", close.text);
    let v4 = close.body["version"].as_i64().expect("version");
    let closed = stack.read(&format!("{path}?as_of=2026-01-20"), v4).await;
    assert_eq!(closed.body["posted"], "100");
    assert_eq!(
        closed.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    let open = stack.read(&format!("{path}?as_of=2026-02-20"), v4).await;
    assert_eq!(open.header("cache-control"), Some("private, no-cache"));
    stack.stop().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_version_beyond_the_ledgers_head_answers_409_at_once(pool: PgPool) {
    // A server that waited instead would answer 503 not-yet-projected after this wait.
    let stack = Stack::start_with(pool, |config| {
        config.min_version_wait = Duration::from_secs(5);
    })
    .await;
    let v = small(&stack).await;
    let answer = stack
        .read("/v1/ledgers/main/accounts/assets:cash", v + 1_000_000)
        .await;
    assert_eq!(answer.status, 409, "{}", answer.text);
    assert_eq!(answer.problem_type(), "version-beyond-head");
    assert_eq!(answer.body["field"], "Tally-Min-Version");
    assert_eq!(answer.body["head"], v);
    assert_eq!(answer.header("content-type"), Some(crate::support::PROBLEM));
    // No command has created this ledger, so no token of it exists: 404 at once, not a wait.
    let answer = stack.read("/v1/ledgers/later", 1).await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert_eq!(answer.problem_type(), "ledger-not-found");
    // A version the ledger has reached is still waited for and answered.
    let answer = stack.read("/v1/ledgers/main/accounts/assets:cash", v).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    stack.stop().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn live_streams_new_transfers_and_balances(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let v = small(&stack).await;
    // The stream starts after what the read model holds.
    let _ = stack.read("/v1/ledgers/main", v).await;
    let response = stack
        .client
        .get(format!("{}/v1/ledgers/main/live", stack.queries))
        .send()
        .await
        .expect("a stream");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"))
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let (id, _) = stack
        .transfer("main", "assets:cash", "equity:capital", 7, None)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains(&id.to_string()) && text.contains("event: balance")) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the update within 10 s")
            .expect("the stream stays open")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("event: hello"), "{text}");
    assert!(text.contains("event: transfer"), "{text}");
    assert!(text.contains("\"posted\":\"107\""), "{text}");
    drop(body);
    stack.stop().await;
}
