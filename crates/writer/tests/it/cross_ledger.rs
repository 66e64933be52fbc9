//! Batches of several ledgers share a transaction; one ledger's conflict never fails another's.

use crate::fixtures::*;
use sqlx::PgPool;
use std::time::Duration;
use tally_domain::*;
use tally_eventstore::EventStore;
use tally_writer::{WriterConfig, Writers};
use uuid::Uuid;

/// Creates `name` with the same accounts as `main`.
async fn create(writers: &Writers, name: &str) -> LedgerId {
    let ledger = LedgerId::parse(name).expect("valid ledger id");
    for kind in [
        CommandKind::CreateLedger { name: name.into() },
        open("equity:capital", AccountType::Equity, None),
        open("assets:a", AccountType::Asset, Some(0)),
        open("assets:b", AccountType::Asset, Some(0)),
    ] {
        accepted(writers.submit(&ledger, sub(kind)).await);
    }
    ledger
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn callers_spread_over_many_ledgers_share_transactions(pool: PgPool) {
    let store = EventStore::new(pool);
    let writers = Writers::new(store.clone(), WriterConfig::default());
    let mut ledgers = Vec::new();
    for i in 0..20 {
        ledgers.push(create(&writers, &format!("l{i:02}")).await);
    }
    let mut tasks = Vec::new();
    for caller in 0..40u32 {
        let writers = writers.clone();
        let ledgers = ledgers.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10u32 {
                let ledger = &ledgers[((caller + i) % 20) as usize];
                let id = Uuid::from_u128(u128::from(caller) << 32 | u128::from(i));
                let a = accepted(
                    writers
                        .submit(ledger, sub(transfer(id, "equity:capital", "assets:a", 1)))
                        .await,
                );
                assert!(!a.duplicate);
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller task");
    }
    writers.shutdown().await;
    let mut total = 0;
    for ledger in &ledgers {
        let state = replay(&store, ledger).await;
        let a = AccountBalance::of(state.account(&code("assets:a")).expect("exists"));
        total += a.posted;
        assert_eq!(state.version, 4 + a.posted as u64, "one event per transfer");
        assert!(
            store
                .verify_stream(ledger.as_str())
                .await
                .expect("verify")
                .is_intact()
        );
    }
    assert_eq!(total, 40 * 10, "every transfer booked exactly once");
    // Transactions that appended transfers, across all ledgers: fewer than the transfers.
    let transactions: i64 =
        sqlx::query_scalar("select count(distinct tx) from events where transfer_id is not null")
            .fetch_one(store.pool())
            .await
            .expect("count transactions");
    assert!(
        transactions < 400,
        "40 callers over 20 ledgers should share transactions, got {transactions}"
    );
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_conflict_on_one_ledger_leaves_the_other_ledgers_of_its_group_committed(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    // One committer, so the batches queued behind a blocked transaction form the next group together.
    let first = setup(
        &store,
        WriterConfig {
            committers: 1,
            ..WriterConfig::default()
        },
    )
    .await;
    let main = main_ledger();
    let other = create(&first, "other").await;
    let blocker = create(&first, "blocker").await;
    // Another process moves `main` on, so `first`'s cached state of it is stale.
    let second = Writers::new(store.clone(), WriterConfig::default());
    accepted(
        second
            .submit(
                &main,
                sub(transfer(
                    Uuid::from_u128(1),
                    "equity:capital",
                    "assets:a",
                    5,
                )),
            )
            .await,
    );
    second.shutdown().await;

    // Hold `blocker`'s head so the committer waits inside its transaction.
    let mut hold = pool.begin().await.expect("begin");
    sqlx::query("select 1 from streams where stream_id = 'blocker' for update")
        .execute(&mut *hold)
        .await
        .expect("lock blocker");
    let submit = |ledger: LedgerId, id: u128| {
        let first = first.clone();
        tokio::spawn(async move {
            first
                .submit(
                    &ledger,
                    sub(transfer(
                        Uuid::from_u128(id),
                        "equity:capital",
                        "assets:a",
                        2,
                    )),
                )
                .await
        })
    };
    let blocked = submit(blocker.clone(), 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let on_main = submit(main.clone(), 11);
    let on_other = submit(other.clone(), 12);
    tokio::time::sleep(Duration::from_millis(200)).await;
    hold.rollback().await.expect("release blocker");

    assert_eq!(accepted(blocked.await.expect("task")).version, 5);
    // `main` conflicted (it is at 5, not 4), was re-decided and appended after the other's.
    let main_answer = accepted(on_main.await.expect("task"));
    assert_eq!(main_answer.version, 6);
    let a = main_answer.outcomes[0]
        .balances
        .iter()
        .find(|b| b.account == code("assets:a"))
        .expect("touched");
    assert_eq!(a.posted, 7, "decided against the other process's transfer");
    assert_eq!(accepted(on_other.await.expect("task")).version, 5);
    first.shutdown().await;

    for ledger in [&main, &other, &blocker] {
        assert!(
            store
                .verify_stream(ledger.as_str())
                .await
                .expect("verify")
                .is_intact()
        );
    }
    assert_eq!(replay(&store, &main).await.version, 6);
    assert_eq!(replay(&store, &other).await.version, 5);
}
