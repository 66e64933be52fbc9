//! The audit routes: the event trail page by page, and hash-chain verification that catches an edit.

use sqlx::PgPool;

use crate::support::{PROBLEM, Stack};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_event_trail_pages_and_verification_catches_an_edit(pool: PgPool) {
    let stack = Stack::start(pool).await;
    stack.ledger("main").await;
    stack.account("main", "assets:cash", "asset", "USD").await;
    stack
        .account("main", "equity:capital", "equity", "USD")
        .await;
    let (id, head) = stack
        .transfer("main", "assets:cash", "equity:capital", 100, None)
        .await;
    assert_eq!(head, 4);

    let first = stack.get("/v1/ledgers/main/events?limit=3").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let events = first.body["events"].as_array().expect("events");
    let versions: Vec<i64> = events
        .iter()
        .map(|e| e["version"].as_i64().expect("v"))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(events[0]["type"], "LedgerCreated");
    assert_eq!(events[0]["metadata"]["actor"], "anonymous");
    assert_eq!(events[1]["prev_hash"], events[0]["hash"], "chained");
    assert_eq!(first.body["next_after"], 3);
    let rest = stack.get("/v1/ledgers/main/events?after=3").await;
    let events = rest.body["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"]["transfer"]["id"], id.to_string());
    assert!(rest.body["next_after"].is_null());

    let intact = stack.get("/v1/ledgers/main/verify").await;
    assert_eq!(intact.body["intact"], true, "{}", intact.text);
    assert_eq!(intact.body["version"], head);
    assert_eq!(intact.body["head_hash"], events[0]["hash"]);

    // An attacker with database access edits an amount.
    let mut tx = stack.pool.begin().await.expect("begin");
    sqlx::query("set local tally.allow_tamper = 'on'")
        .execute(&mut *tx)
        .await
        .expect("flag");
    sqlx::query(
        "update events set payload = jsonb_set(payload, '{transfer,legs,0,amount}', '\"1\"') \
         where stream_id = 'main' and version = 4",
    )
    .execute(&mut *tx)
    .await
    .expect("edit");
    tx.commit().await.expect("commit");
    let broken = stack.get("/v1/ledgers/main/verify").await;
    assert_eq!(broken.body["intact"], false, "{}", broken.text);
    assert_eq!(broken.body["problem"], "tampered-event");
    assert_eq!(broken.body["at_version"], 4);

    for (path, status, field) in [
        ("/v1/ledgers/nope/events", 404, None),
        ("/v1/ledgers/nope/verify", 404, None),
        ("/v1/ledgers/main/events?after=-1", 400, Some("after")),
        ("/v1/ledgers/main/events?limit=100000", 400, Some("limit")),
    ] {
        let answer = stack.get(path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
        assert_eq!(answer.header("content-type"), Some(PROBLEM));
        if let Some(field) = field {
            assert_eq!(answer.body["field"], field);
        }
    }
    stack.stop().await;
}
