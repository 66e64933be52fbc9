//! Every query route over real read models, built by the real pipeline from real commands.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::oracle::{balance, replay};
use crate::support::Stack;

fn amount(v: &Value) -> i128 {
    v.as_str().expect("a string").parse().expect("an integer")
}

/// `main` with a small chart (two currencies, a sibling that shares a prefix by bytes only) and traffic:
/// posted, pending, posted-from-pending, voided and reversed transfers. Returns the head version.
async fn books(stack: &Stack) -> i64 {
    stack.ledger("main").await;
    for (code, kind, currency) in [
        ("assets:cash", "asset", "USD"),
        ("assets:bank", "asset", "USD"),
        ("assets-other", "asset", "USD"),
        ("liabilities:loan", "liability", "USD"),
        ("equity:capital", "equity", "USD"),
        ("revenue:sales", "revenue", "USD"),
        ("expenses:rent", "expense", "USD"),
        ("assets:eur", "asset", "EUR"),
        ("equity:eur", "equity", "EUR"),
    ] {
        stack.account("main", code, kind, currency).await;
    }
    stack
        .transfer(
            "main",
            "assets:cash",
            "equity:capital",
            10_000,
            Some("2026-01-01T00:00:00Z"),
        )
        .await;
    stack
        .transfer(
            "main",
            "assets:bank",
            "liabilities:loan",
            5_000,
            Some("2026-01-02T00:00:00Z"),
        )
        .await;
    stack
        .transfer(
            "main",
            "assets:cash",
            "revenue:sales",
            2_500,
            Some("2026-02-01T00:00:00Z"),
        )
        .await;
    stack
        .transfer(
            "main",
            "expenses:rent",
            "assets:cash",
            1_200,
            Some("2026-02-03T00:00:00Z"),
        )
        .await;
    stack
        .transfer("main", "assets:eur", "equity:eur", 700, None)
        .await;
    let (reversed, _) = stack
        .transfer("main", "expenses:rent", "assets:bank", 99, None)
        .await;
    stack
        .command(
            &format!("/v1/ledgers/main/transfers/{reversed}/reverse"),
            json!({"reversal_id": Uuid::now_v7(), "reason": "wrong_account"}),
        )
        .await;
    let pending = |id: Uuid, amount: &str| {
        json!({
            "id": id,
            "pending": {"timeout_secs": 3600},
            "legs": [
                {"account": "expenses:rent", "side": "debit", "amount": amount, "currency": "USD"},
                {"account": "assets:cash", "side": "credit", "amount": amount, "currency": "USD"},
            ],
        })
    };
    let (held, posted, voided) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for id in [held, posted, voided] {
        stack
            .command("/v1/ledgers/main/transfers", pending(id, "40"))
            .await;
    }
    stack
        .command(
            &format!("/v1/ledgers/main/transfers/{posted}/post"),
            json!({}),
        )
        .await;
    stack
        .command(
            &format!("/v1/ledgers/main/transfers/{voided}/void"),
            json!({}),
        )
        .await
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn every_route_answers_from_the_read_models(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let head = books(&stack).await;
    let state = replay(&stack.store, "main", head).await;

    // Ledgers.
    let ledger = stack.read("/v1/ledgers/main", head).await;
    assert_eq!(ledger.status, 200, "{}", ledger.text);
    assert_eq!(ledger.body["version"], head);
    assert_eq!(
        ledger.header("tally-version"),
        Some(head.to_string().as_str())
    );
    assert_eq!(ledger.header("etag"), Some(format!("\"{head}\"").as_str()));
    let ledgers = stack.get("/v1/ledgers").await;
    assert_eq!(ledgers.body["items"][0]["ledger"], "main");

    // Accounts by prefix, paged: `assets` is whole segments, so `assets-other` is not in it.
    let page = stack
        .read("/v1/ledgers/main/accounts?prefix=assets&limit=2", head)
        .await;
    let codes: Vec<&str> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["assets:bank", "assets:cash"]);
    let cursor = page.body["next_cursor"].as_str().expect("more");
    let rest = stack
        .read(
            &format!("/v1/ledgers/main/accounts?prefix=assets&limit=2&cursor={cursor}"),
            head,
        )
        .await;
    assert_eq!(rest.body["items"].as_array().expect("items").len(), 1);
    assert_eq!(rest.body["items"][0]["code"], "assets:eur");
    assert!(rest.body["next_cursor"].is_null());

    // One account: balances as the domain's replay has them, including the open reservation.
    let cash = stack
        .read("/v1/ledgers/main/accounts/assets:cash", head)
        .await;
    let code = tally_domain::AccountCode::parse("assets:cash").expect("code");
    let expected = &state.accounts[&code];
    let normal = expected.account_type.normal_side();
    let balances = &cash.body["balances"];
    assert_eq!(
        amount(&balances["posted"]),
        expected.totals.posted(normal).expect("fits")
    );
    assert_eq!(
        amount(&balances["pending"]),
        expected.totals.pending(normal).expect("fits")
    );
    assert_eq!(
        amount(&balances["available"]),
        expected.totals.available(normal).expect("fits")
    );
    assert_eq!(amount(&balances["posted"]), 10_000 + 2_500 - 1_200 - 40);
    assert_eq!(amount(&balances["available"]), 11_260 - 40);

    // Statement: running balance in business-time order.
    let statement = stack
        .read("/v1/ledgers/main/accounts/assets:cash/entries", head)
        .await;
    let entries = statement.body["entries"].as_array().expect("entries");
    let mut running = 0i128;
    for entry in entries {
        let a = amount(&entry["amount"]);
        running += if entry["side"] == "debit" { a } else { -a };
        assert_eq!(amount(&entry["balance_after"]), running);
    }
    assert_eq!(running, balance(&state, "assets:cash", None));
    assert_eq!(entries[0]["description"], "assets:cash from equity:capital");

    // Transfers: one, and listings with filters (newest first).
    let all = stack
        .read("/v1/ledgers/main/transfers?limit=1000", head)
        .await;
    let items = all.body["items"].as_array().expect("items");
    assert_eq!(items.len(), state.transfers.len());
    let versions: Vec<i64> = items
        .iter()
        .map(|t| t["created_version"].as_i64().expect("version"))
        .collect();
    assert!(versions.windows(2).all(|w| w[0] > w[1]), "newest first");
    for (status, count) in [("pending", 1), ("voided", 1), ("reversed", 1)] {
        let filtered = stack
            .read(&format!("/v1/ledgers/main/transfers?status={status}"), head)
            .await;
        assert_eq!(
            filtered.body["items"].as_array().expect("items").len(),
            count,
            "{status}"
        );
    }
    let bank = stack
        .read("/v1/ledgers/main/transfers?account=assets:bank", head)
        .await;
    assert_eq!(bank.body["items"].as_array().expect("items").len(), 3);
    let dated = stack
        .read(
            "/v1/ledgers/main/transfers?from=2026-01-02&to=2026-02-01",
            head,
        )
        .await;
    assert_eq!(dated.body["items"].as_array().expect("items").len(), 2);
    let id = items[0]["id"].as_str().expect("id");
    let one = stack
        .read(&format!("/v1/ledgers/main/transfers/{id}"), head)
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["id"], id);

    // Reports balance per currency, with roll-ups.
    let trial = stack
        .read("/v1/ledgers/main/reports/trial-balance", head)
        .await;
    let currencies = trial.body["currencies"].as_array().expect("currencies");
    assert_eq!(currencies.len(), 2);
    for currency in currencies {
        assert_eq!(currency["balanced"], true, "{currency}");
    }
    let usd = currencies
        .iter()
        .find(|c| c["currency"] == "USD")
        .expect("USD");
    let assets = usd["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["code"] == "assets")
        .expect("a roll-up");
    assert!(assets["type"].is_null());
    assert_eq!(
        amount(&assets["debit"]),
        balance(&state, "assets:cash", None) + balance(&state, "assets:bank", None)
    );
    let sheet = stack
        .read("/v1/ledgers/main/reports/balance-sheet", head)
        .await;
    for currency in sheet.body["currencies"].as_array().expect("currencies") {
        assert_eq!(currency["balanced"], true, "{currency}");
    }
    let income = stack
        .read(
            "/v1/ledgers/main/reports/income-statement?from=2026-02-01&to=2026-02-28",
            head,
        )
        .await;
    let usd = income.body["currencies"]
        .as_array()
        .expect("currencies")
        .iter()
        .find(|c| c["currency"] == "USD")
        .expect("USD");
    assert_eq!(amount(&usd["revenue"]["total"]), 2_500);
    assert_eq!(amount(&usd["expenses"]["total"]), 1_200);
    assert_eq!(amount(&usd["net_income"]), 1_300);
    let january = stack
        .read(
            "/v1/ledgers/main/reports/income-statement?from=2026-01-01&to=2026-01-31",
            head,
        )
        .await;
    for currency in january.body["currencies"].as_array().expect("currencies") {
        assert_eq!(amount(&currency["net_income"]), 0, "{currency}");
    }

    // Volumes per day and per month.
    let volumes = stack
        .read(
            "/v1/ledgers/main/reports/volumes?from=2026-01-01&to=2026-02-28&prefix=assets:cash",
            head,
        )
        .await;
    let lines = volumes.body["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 3, "{}", volumes.text);
    let months = stack
        .read(
            "/v1/ledgers/main/reports/volumes?from=2026-01-01&to=2026-02-28&prefix=assets:cash&bucket=month",
            head,
        )
        .await;
    let lines = months.body["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["bucket"], "2026-02-01");
    assert_eq!(amount(&lines[1]["debits"]), 2_500);
    assert_eq!(amount(&lines[1]["credits"]), 1_200);
    assert_eq!(lines[1]["entries"], 2);

    // Exports stream every row: CSV with a header, NDJSON one object per line.
    let csv = stack
        .get_with(
            "/v1/ledgers/main/accounts/assets:cash/entries",
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("content-type")
            .expect("type")
            .starts_with("text/csv")
    );
    let rows: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        rows[0],
        "effective_at,recorded_at,version,leg,transfer_id,side,amount,balance_after,description"
    );
    assert_eq!(rows.len(), entries.len() + 1);
    let ndjson = stack
        .get("/v1/ledgers/main/reports/trial-balance?format=ndjson")
        .await;
    assert_eq!(ndjson.header("content-type"), Some("application/x-ndjson"));
    let objects: Vec<Value> = ndjson
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        objects
            .iter()
            .any(|o| o["code"] == "(total)" && o["currency"] == "EUR")
    );
    let csv_report = stack
        .get("/v1/ledgers/main/reports/balance-sheet?format=csv")
        .await;
    assert!(
        csv_report
            .text
            .starts_with("currency,section,code,level,balance\n")
    );
    stack.stop().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn statement_pages_are_stable_under_concurrent_inserts(pool: PgPool) {
    let stack = Stack::start(pool).await;
    stack.ledger("main").await;
    stack.account("main", "assets:cash", "asset", "USD").await;
    stack
        .account("main", "equity:capital", "equity", "USD")
        .await;
    let mut head = 0;
    for n in 0..60 {
        let at = format!("2026-01-{:02}T{:02}:00:00Z", 1 + n / 24, n % 24);
        head = stack
            .transfer("main", "assets:cash", "equity:capital", 1 + n, Some(&at))
            .await
            .1;
    }
    let before: Vec<(i64, i64)> = {
        let all = stack
            .read(
                "/v1/ledgers/main/accounts/assets:cash/entries?limit=1000",
                head,
            )
            .await;
        all.body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["version"].as_i64().expect("v"),
                    e["leg"].as_i64().expect("leg"),
                )
            })
            .collect()
    };
    assert_eq!(before.len(), 60);

    // Page through with small pages while other transfers land before, inside and after the range.
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut n = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/ledgers/main/accounts/assets:cash/entries?limit=7&cursor={c}"),
            None => "/v1/ledgers/main/accounts/assets:cash/entries?limit=7".to_owned(),
        };
        let page = stack.read(&path, head).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for e in page.body["entries"].as_array().expect("entries") {
            seen.push((
                e["version"].as_i64().expect("v"),
                e["leg"].as_i64().expect("leg"),
            ));
        }
        n += 1;
        let at = format!("2026-01-{:02}T12:30:00Z", 1 + (n % 3));
        head = stack
            .transfer("main", "assets:cash", "equity:capital", 5, Some(&at))
            .await
            .1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no entry repeated across pages");
    for entry in &before {
        assert!(seen.contains(entry), "{entry:?} skipped");
    }
    stack.stop().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_openapi_document_describes_every_query_route(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let document = stack.get("/openapi.json").await;
    assert_eq!(document.body["openapi"], "3.1.0");
    for path in [
        "/v1/ledgers",
        "/v1/ledgers/{ledger}",
        "/v1/ledgers/{ledger}/accounts",
        "/v1/ledgers/{ledger}/accounts/{code}",
        "/v1/ledgers/{ledger}/accounts/{code}/entries",
        "/v1/ledgers/{ledger}/transfers",
        "/v1/ledgers/{ledger}/transfers/{id}",
        "/v1/ledgers/{ledger}/reports/trial-balance",
        "/v1/ledgers/{ledger}/reports/balance-sheet",
        "/v1/ledgers/{ledger}/reports/income-statement",
        "/v1/ledgers/{ledger}/reports/volumes",
        "/v1/ledgers/{ledger}/live",
        "/v1/ledgers/{ledger}/events",
        "/v1/ledgers/{ledger}/verify",
    ] {
        assert!(
            document.body["paths"][path]["get"].is_object(),
            "{path} is not described"
        );
    }
    let docs = stack.get("/docs").await;
    assert_eq!(docs.status, 200);
    stack.stop().await;
}
