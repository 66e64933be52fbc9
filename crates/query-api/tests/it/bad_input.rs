//! Hostile and mistaken queries: each a clear 4xx problem+json naming what to fix.

use sqlx::PgPool;

use crate::support::{PROBLEM, Stack};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn bad_queries_answer_problems(pool: PgPool) {
    let stack = Stack::start(pool).await;
    stack.ledger("main").await;
    stack.account("main", "assets:cash", "asset", "USD").await;
    let v = stack
        .account("main", "equity:capital", "equity", "USD")
        .await;
    let _ = stack.read("/v1/ledgers/main", v).await;
    let account_cursor = {
        let page = stack.get("/v1/ledgers/main/accounts?limit=1").await;
        page.body["next_cursor"]
            .as_str()
            .expect("a cursor")
            .to_owned()
    };
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        ("/v1/ledgers/nope".into(), 404, "ledger-not-found", None),
        (
            "/v1/ledgers/NOT%20A%20LEDGER/accounts".into(),
            404,
            "ledger-not-found",
            None,
        ),
        (
            "/v1/ledgers/main/accounts/assets:nope".into(),
            404,
            "unknown-account",
            None,
        ),
        (
            "/v1/ledgers/main/accounts/Bad%20Code".into(),
            404,
            "unknown-account",
            None,
        ),
        (
            "/v1/ledgers/main/transfers/0190a000-0000-7000-8000-000000000001".into(),
            404,
            "transfer-not-found",
            None,
        ),
        (
            "/v1/ledgers/main/transfers/not-a-uuid".into(),
            404,
            "transfer-not-found",
            None,
        ),
        (
            "/v1/ledgers/main/accounts?limit=5000".into(),
            400,
            "invalid-parameter",
            Some("limit"),
        ),
        (
            "/v1/ledgers/main/accounts?limit=0".into(),
            400,
            "invalid-parameter",
            Some("limit"),
        ),
        (
            "/v1/ledgers/main/accounts?limit=ten".into(),
            400,
            "invalid-parameter",
            Some("limit"),
        ),
        (
            "/v1/ledgers/main/accounts?cursor=%25%25garbage".into(),
            400,
            "invalid-parameter",
            Some("cursor"),
        ),
        (
            format!("/v1/ledgers/main/transfers?cursor={account_cursor}"),
            400,
            "invalid-parameter",
            Some("cursor"),
        ),
        (
            "/v1/ledgers/main/accounts/assets:cash/entries?cursor=ZXwxfDJ8".into(),
            400,
            "invalid-parameter",
            Some("cursor"),
        ),
        (
            "/v1/ledgers/main/accounts?prefix=Assets".into(),
            400,
            "invalid-parameter",
            Some("prefix"),
        ),
        (
            "/v1/ledgers/main/accounts?prefix=assets%25".into(),
            400,
            "invalid-parameter",
            Some("prefix"),
        ),
        (
            "/v1/ledgers/main/accounts?asof=2026-01-01".into(),
            400,
            "invalid-parameter",
            Some("query"),
        ),
        (
            "/v1/ledgers/main/accounts/assets:cash?as_of=31/03/2026".into(),
            400,
            "invalid-parameter",
            Some("as_of"),
        ),
        (
            "/v1/ledgers/main/accounts/assets:cash?as_of=2026-02-30".into(),
            400,
            "invalid-parameter",
            Some("as_of"),
        ),
        (
            "/v1/ledgers/main/accounts/assets:cash?known_at=999999".into(),
            409,
            "version-beyond-head",
            Some("known_at"),
        ),
        (
            "/v1/ledgers/main/accounts/assets:cash?known_at=99999999999999999999999".into(),
            400,
            "invalid-parameter",
            Some("known_at"),
        ),
        (
            "/v1/ledgers/main/accounts/assets:cash/entries?from=2026-02-01&to=2026-01-01".into(),
            400,
            "invalid-parameter",
            Some("from"),
        ),
        (
            "/v1/ledgers/main/accounts/assets:cash/entries?format=xml".into(),
            400,
            "invalid-parameter",
            Some("format"),
        ),
        (
            "/v1/ledgers/main/transfers?status=lost".into(),
            400,
            "invalid-parameter",
            Some("status"),
        ),
        (
            "/v1/ledgers/main/transfers?account=Not%20Code".into(),
            400,
            "invalid-parameter",
            Some("account"),
        ),
        (
            "/v1/ledgers/main/reports/income-statement?from=2026-01-01".into(),
            400,
            "invalid-parameter",
            Some("query"),
        ),
        (
            "/v1/ledgers/main/reports/volumes?bucket=year".into(),
            400,
            "invalid-parameter",
            Some("bucket"),
        ),
        (
            "/v1/ledgers/main/reports/volumes?from=2000-01-01&to=2026-01-01".into(),
            400,
            "invalid-parameter",
            Some("from"),
        ),
        (
            "/v1/ledgers/main/reports/volumes?from=yesterday".into(),
            400,
            "invalid-parameter",
            Some("from"),
        ),
    ];
    for (path, status, kind, field) in cases {
        let answer = stack.get(&path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
        assert_eq!(answer.header("content-type"), Some(PROBLEM), "{path}");
        assert_eq!(answer.problem_type(), kind, "{path}: {}", answer.text);
        if let Some(field) = field {
            assert_eq!(answer.body["field"], field, "{path}: {}", answer.text);
        }
    }
    let not_acceptable = stack
        .get_with(
            "/v1/ledgers/main/reports/trial-balance",
            &[("accept", "image/png")],
        )
        .await;
    assert_eq!(not_acceptable.status, 406);
    assert_eq!(not_acceptable.problem_type(), "not-acceptable");
    let bad_header = stack
        .get_with("/v1/ledgers/main", &[("tally-min-version", "-1")])
        .await;
    assert_eq!(bad_header.status, 400);
    assert_eq!(bad_header.body["field"], "Tally-Min-Version");
    stack.stop().await;
}
