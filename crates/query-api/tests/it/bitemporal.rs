//! `as_of` and `known_at`: answers checked against a replay of the store at that version.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::oracle::{balance, replay};
use crate::support::Stack;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn amount(v: &Value) -> i128 {
    v.as_str().expect("a string").parse().expect("an integer")
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn balances_as_of_and_known_at_match_a_replay_of_the_store(pool: PgPool) {
    let stack = Stack::start(pool).await;
    stack.ledger("main").await;
    stack.account("main", "assets:cash", "asset", "USD").await;
    stack
        .account("main", "equity:capital", "equity", "USD")
        .await;
    stack
        .account("main", "revenue:sales", "revenue", "USD")
        .await;
    // March and May first; then, recorded later, a backdated April entry and a reversal.
    let (_, v_march) = stack
        .transfer(
            "main",
            "assets:cash",
            "equity:capital",
            1000,
            Some("2026-03-10T00:00:00Z"),
        )
        .await;
    let (may, v_may) = stack
        .transfer(
            "main",
            "assets:cash",
            "revenue:sales",
            300,
            Some("2026-05-02T00:00:00Z"),
        )
        .await;
    let (_, v_april) = stack
        .transfer(
            "main",
            "assets:cash",
            "revenue:sales",
            50,
            Some("2026-04-05T12:00:00Z"),
        )
        .await;
    let v_reversal = stack
        .command(
            &format!("/v1/ledgers/main/transfers/{may}/reverse"),
            serde_json::json!({"reversal_id": uuid::Uuid::now_v7(), "reason": "duplicate"}),
        )
        .await;
    assert!(v_march < v_may && v_may < v_april && v_april < v_reversal);

    let instants = [
        None,
        Some("2026-03-09T00:00:00Z"),
        Some("2026-03-31T23:59:59Z"),
        Some("2026-04-05T12:00:00Z"),
        Some("2026-04-30T00:00:00Z"),
        Some("2026-06-01T00:00:00Z"),
    ];
    for known in [v_march, v_may, v_april, v_reversal] {
        let state = replay(&stack.store, "main", known).await;
        for as_of in instants {
            for code in ["assets:cash", "revenue:sales", "equity:capital"] {
                let mut path = format!("/v1/ledgers/main/accounts/{code}?known_at={known}");
                if let Some(as_of) = as_of {
                    path.push_str(&format!("&as_of={as_of}"));
                }
                let answer = stack.read(&path, v_reversal).await;
                assert_eq!(answer.status, 200, "{path}: {}", answer.text);
                let expected = balance(&state, code, as_of.map(at));
                assert_eq!(amount(&answer.body["posted"]), expected, "{path}");
                assert_eq!(answer.body["known_at_version"], known);
                // What was known at a fixed version never changes.
                assert_eq!(
                    answer.header("cache-control"),
                    Some("private, max-age=31536000, immutable"),
                    "{path}"
                );
            }
        }
    }

    // Without known_at: everything known now; a date means the end of that day.
    let now = replay(&stack.store, "main", v_reversal).await;
    let answer = stack
        .read(
            "/v1/ledgers/main/accounts/assets:cash?as_of=2026-04-05",
            v_reversal,
        )
        .await;
    assert_eq!(
        amount(&answer.body["posted"]),
        balance(&now, "assets:cash", Some(at("2026-04-05T23:59:59.999999Z")))
    );
    assert_eq!(amount(&answer.body["posted"]), 1050);
    assert_eq!(answer.header("cache-control"), Some("private, no-cache"));

    // known_at as an instant: the latest version recorded by then.
    let recorded: DateTime<Utc> = sqlx::query_scalar(
        "select recorded_at from events where stream_id = 'main' and version = $1",
    )
    .bind(v_may)
    .fetch_one(&stack.pool)
    .await
    .expect("event");
    let instant = recorded.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let by_instant = stack
        .read(
            &format!("/v1/ledgers/main/accounts/assets:cash?as_of=2026-04-30&known_at={instant}"),
            v_reversal,
        )
        .await;
    let by_version = stack
        .read(
            &format!("/v1/ledgers/main/accounts/assets:cash?as_of=2026-04-30&known_at={v_may}"),
            v_reversal,
        )
        .await;
    assert_eq!(by_instant.body["posted"], by_version.body["posted"]);
    assert_eq!(
        amount(&by_instant.body["posted"]),
        1000,
        "April's entry was not known yet"
    );

    // The trial balance as of / known at agrees with the replay for every account, and balances.
    for known in [v_may, v_reversal] {
        let state = replay(&stack.store, "main", known).await;
        let report = stack
            .read(
                &format!(
                    "/v1/ledgers/main/reports/trial-balance?as_of=2026-04-30&known_at={known}"
                ),
                v_reversal,
            )
            .await;
        assert_eq!(report.status, 200, "{}", report.text);
        let usd = &report.body["currencies"][0];
        assert_eq!(usd["balanced"], true);
        for line in usd["lines"].as_array().expect("lines") {
            let Some(kind) = line["type"].as_str() else {
                continue;
            };
            let code = line["code"].as_str().expect("code");
            let expected = balance(&state, code, Some(at("2026-04-30T23:59:59.999999Z")));
            let debit_normal = kind == "asset" || kind == "expense";
            let shown = if debit_normal {
                amount(&line["debit"]) - amount(&line["credit"])
            } else {
                amount(&line["credit"]) - amount(&line["debit"])
            };
            assert_eq!(shown, expected, "{code} known at {known}");
        }
    }
    stack.stop().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn statements_known_at_a_version_recompute_running_balances(pool: PgPool) {
    let stack = Stack::start(pool).await;
    stack.ledger("main").await;
    stack.account("main", "assets:cash", "asset", "USD").await;
    stack
        .account("main", "equity:capital", "equity", "USD")
        .await;
    let mut last = 0;
    for day in [1, 3, 5, 7] {
        last = stack
            .transfer(
                "main",
                "assets:cash",
                "equity:capital",
                100 * day,
                Some(&format!("2026-01-0{day}T00:00:00Z")),
            )
            .await
            .1;
    }
    let known = last;
    // Backdated between the first two: shifts every later running balance now, but not as known then.
    let (_, head) = stack
        .transfer(
            "main",
            "assets:cash",
            "equity:capital",
            7,
            Some("2026-01-02T00:00:00Z"),
        )
        .await;

    let now = stack
        .read("/v1/ledgers/main/accounts/assets:cash/entries", head)
        .await;
    let running: Vec<i128> = now.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| amount(&e["balance_after"]))
        .collect();
    assert_eq!(running, [100, 107, 407, 907, 1607]);

    let then = stack
        .read(
            &format!("/v1/ledgers/main/accounts/assets:cash/entries?known_at={known}&limit=2"),
            head,
        )
        .await;
    let first: Vec<i128> = then.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| amount(&e["balance_after"]))
        .collect();
    assert_eq!(first, [100, 400]);
    let cursor = then.body["next_cursor"].as_str().expect("a next page");
    let next = stack
        .read(
            &format!(
                "/v1/ledgers/main/accounts/assets:cash/entries?known_at={known}&limit=2&cursor={cursor}"
            ),
            head,
        )
        .await;
    assert_eq!(amount(&next.body["opening_balance"]), 400);
    let rest: Vec<i128> = next.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| amount(&e["balance_after"]))
        .collect();
    assert_eq!(rest, [900, 1600]);

    // A statement range starts from the balance before it.
    let range = stack
        .read(
            "/v1/ledgers/main/accounts/assets:cash/entries?from=2026-01-03&to=2026-01-05",
            head,
        )
        .await;
    assert_eq!(amount(&range.body["opening_balance"]), 107);
    assert_eq!(range.body["entries"].as_array().expect("entries").len(), 2);
    stack.stop().await;
}
