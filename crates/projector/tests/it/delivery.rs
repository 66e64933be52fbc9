//! Duplicate, out-of-order and gappy deliveries, injected straight into the projection.

use crate::fixtures::*;
use sqlx::PgPool;
use tally_projector::{StoredEvent, project_batch, project_batches, rebuild};

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn duplicates_reordering_and_gaps_leave_the_read_models_exact(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 700).await;
    let store = traffic.store.clone();
    let events: Vec<StoredEvent> = stored(&store, "alpha").await;
    assert!(events.len() > 10);
    let chunks: Vec<Vec<StoredEvent>> = events.chunks(3).map(<[StoredEvent]>::to_vec).collect();
    // Deliver the third chunk first (a gap: filled from the store), then everything again in reverse
    // (all duplicates), then the first chunk once more.
    let order = [2usize, 0, 1]
        .into_iter()
        .chain((0..chunks.len()).rev())
        .chain([0]);
    for i in order {
        project_batch(&pool, &store, "read", "alpha", chunks[i].clone())
            .await
            .expect("projects");
    }
    let version: i64 =
        sqlx::query_scalar("select version from read.checkpoints where ledger_id = 'alpha'")
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
    assert_eq!(version, events.len() as i64);
    // beta was never delivered: project it from the store so the comparison covers both ledgers.
    catch_up_and_compare(&pool, &store, "beta").await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_message_out_of_any_order_within_itself_is_applied_in_version_order(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 800).await;
    let store = traffic.store.clone();
    let mut events: Vec<StoredEvent> = stored(&store, "alpha").await;
    events.reverse();
    let mut doubled = events.clone();
    doubled.extend(events);
    project_batch(&pool, &store, "read", "alpha", doubled)
        .await
        .expect("projects");
    catch_up_and_compare(&pool, &store, "beta").await;
}

/// Running balances of `account` in statement order.
async fn balances(pool: &PgPool, ledger: &str, account: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select balance_after::text from read.entries where ledger_id = $1 and account = $2 \
         order by effective_at, version, leg",
    )
    .bind(ledger)
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("entries")
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_backdated_entry_inside_a_group_of_messages_moves_every_later_balance(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    let store = traffic.store.clone();
    // Projected beforehand, so the group finds entries already written as well as its own.
    traffic
        .must(
            "alpha",
            transfer(1, "equity:capital", "assets:cash", 10_000),
        )
        .await;
    traffic
        .must("alpha", transfer(2, "assets:cash", "assets:bank", 2_500))
        .await;
    tally_projector::catch_up(&pool, &store, "read", "alpha")
        .await
        .expect("project");
    let head = stored(&store, "alpha").await.len();
    traffic
        .must("alpha", transfer(3, "assets:cash", "assets:bank", 1_000))
        .await;
    traffic
        .must(
            "alpha",
            backdated(4, "assets:bank", "expenses:rent", 700, 3),
        )
        .await;
    traffic
        .must("alpha", transfer(5, "assets:cash", "assets:bank", 100))
        .await;
    traffic
        .must("alpha", backdated(6, "assets:cash", "assets:bank", 40, 5))
        .await;
    traffic
        .must("alpha", transfer(7, "assets:bank", "expenses:rent", 1))
        .await;
    // One message per event, all in one transaction.
    let messages = stored(&store, "alpha").await[head..]
        .iter()
        .map(|e| ("alpha".to_owned(), vec![e.clone()]))
        .collect();
    let applied = project_batches(&pool, &store, "read", messages)
        .await
        .expect("projects");
    assert_eq!(applied, 5);
    // In business time: +40 (5 days ago), -700 (3 days ago), +2,500, +1,000, +100, -1.
    assert_eq!(
        balances(&pool, "alpha", "assets:bank").await,
        ["40", "-660", "1840", "2840", "2940", "2939"]
    );
    assert_eq!(
        balances(&pool, "alpha", "assets:cash").await,
        ["-40", "9960", "7460", "6460", "6360"]
    );
    catch_up_and_compare(&pool, &store, "beta").await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_group_mixing_ledgers_duplicates_and_gaps_leaves_the_read_models_exact(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 900).await;
    traffic.admin("beta").await;
    traffic.mixed("beta", 950).await;
    let store = traffic.store.clone();
    let alpha: Vec<Vec<StoredEvent>> = stored(&store, "alpha")
        .await
        .chunks(2)
        .map(<[StoredEvent]>::to_vec)
        .collect();
    let beta: Vec<Vec<StoredEvent>> = stored(&store, "beta")
        .await
        .chunks(3)
        .map(<[StoredEvent]>::to_vec)
        .collect();
    // First group: alpha's first two messages and beta's messages interleaved, some twice, beta's
    // second one missing (a gap the store fills).
    let mut first = vec![
        ("beta".to_owned(), beta[0].clone()),
        ("alpha".to_owned(), alpha[0].clone()),
        ("alpha".to_owned(), alpha[1].clone()),
        ("beta".to_owned(), beta[0].clone()),
        ("alpha".to_owned(), alpha[0].clone()),
    ];
    first.extend(beta[2..].iter().map(|m| ("beta".to_owned(), m.clone())));
    let applied = project_batches(&pool, &store, "read", first)
        .await
        .expect("first group");
    let beta_events: usize = beta.iter().map(Vec::len).sum();
    assert_eq!(applied, 4 + beta_events);
    // Second group: the rest of alpha in reverse (pending transfers posted and voided in the same
    // group as their reservation, or in a later one), with everything of the first group again.
    let mut second: Vec<_> = alpha
        .iter()
        .rev()
        .map(|m| ("alpha".to_owned(), m.clone()))
        .collect();
    second.extend(beta.iter().map(|m| ("beta".to_owned(), m.clone())));
    let alpha_events: usize = alpha.iter().map(Vec::len).sum();
    let applied = project_batches(&pool, &store, "read", second)
        .await
        .expect("second group");
    assert_eq!(applied, alpha_events - 4);
    // A group of nothing but duplicates changes nothing.
    let again = vec![
        ("alpha".to_owned(), alpha[1].clone()),
        ("beta".to_owned(), beta[1].clone()),
    ];
    assert_eq!(
        project_batches(&pool, &store, "read", again)
            .await
            .expect("duplicates"),
        0
    );
    assert!(caught_up(&pool).await);
    assert_same_as_rebuild(&pool, &store).await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn the_comparison_notices_a_wrong_running_balance(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 990).await;
    let store = traffic.store.clone();
    tally_projector::catch_up_all(&pool, &store, "read", &mut |_| {})
        .await
        .expect("project");
    assert_same_as_rebuild(&pool, &store).await;
    sqlx::query(
        "update read.entries set balance_after = balance_after + 1 \
         where ledger_id = 'alpha' and account = 'assets:bank' and version = \
               (select min(version) from read.entries where ledger_id = 'alpha' and account = 'assets:bank')",
    )
    .execute(&pool)
    .await
    .expect("tamper");
    assert_eq!(
        rebuild::differences(&pool, &store).await.expect("compare"),
        [("entries".to_owned(), 2)]
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn read_tables_that_hold_rows_without_statistics_are_analysed_once(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 900).await;
    tally_projector::catch_up(&pool, &traffic.store, "read", "alpha")
        .await
        .expect("catch up");
    let with_statistics = || async {
        sqlx::query_scalar::<_, String>(
            "select distinct tablename::text from pg_stats where schemaname = 'read' order by 1",
        )
        .fetch_all(&pool)
        .await
        .expect("pg_stats")
    };
    assert!(with_statistics().await.is_empty(), "new tables have none");

    let analysed = tally_projector::statistics::analyze_new_tables(&pool, "read")
        .await
        .expect("analyse");
    for table in ["accounts", "checkpoints", "entries", "ledgers", "transfers"] {
        assert!(analysed.iter().any(|t| t == table), "{table}: {analysed:?}");
        assert!(
            with_statistics().await.iter().any(|t| t == table),
            "{table}"
        );
    }
    // From now on they are autovacuum's.
    let again = tally_projector::statistics::analyze_new_tables(&pool, "read")
        .await
        .expect("analyse again");
    assert!(again.is_empty(), "{again:?}");
}
