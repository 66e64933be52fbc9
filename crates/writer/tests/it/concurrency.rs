//! Many callers and two writer instances on one ledger: nothing lost, nothing doubled.

use crate::fixtures::*;
use sqlx::PgPool;
use std::collections::HashSet;
use tally_domain::*;
use tally_eventstore::EventStore;
use tally_writer::{WriterConfig, Writers};
use uuid::Uuid;

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn concurrent_callers_are_group_committed_and_each_answered(pool: PgPool) {
    let store = EventStore::new(pool);
    let writers = setup(&store, WriterConfig::default()).await;
    let ledger = main_ledger();
    let mut tasks = Vec::new();
    for caller in 0..64u32 {
        let writers = writers.clone();
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..10u32 {
                let id = Uuid::from_u128(u128::from(caller) << 32 | u128::from(i));
                let a = accepted(
                    writers
                        .submit(&ledger, sub(transfer(id, "equity:capital", "assets:a", 3)))
                        .await,
                );
                assert!(!a.duplicate);
                let cash = a.outcomes[0]
                    .balances
                    .iter()
                    .find(|b| b.account == code("assets:a"))
                    .expect("touched");
                assert!(cash.posted >= 3);
                versions.push(a.version);
            }
            versions
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.extend(t.await.expect("caller task"));
    }
    // Every caller got its own version, and together they are exactly versions 5..=644.
    versions.sort_unstable();
    assert_eq!(versions, (5..=644).collect::<Vec<u64>>());
    let state = replay(&store, &ledger).await;
    let a = AccountBalance::of(state.account(&code("assets:a")).expect("exists"));
    assert_eq!(a.posted, 64 * 10 * 3);
    assert!(
        store
            .verify_stream("main")
            .await
            .expect("verify")
            .is_intact()
    );
    // Far fewer transactions than commands: the stream has 644 events but is it grouped? The head row
    // is updated once per transaction; its xmin changes per append, so count distinct `tx` values.
    let transactions: i64 =
        sqlx::query_scalar("select count(distinct tx) from events where stream_id = 'main'")
            .fetch_one(store.pool())
            .await
            .expect("count transactions");
    assert!(
        transactions < 644,
        "64 concurrent callers should share transactions, got {transactions}"
    );
    writers.shutdown().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn two_writer_instances_on_one_ledger_lose_and_double_nothing(pool: PgPool) {
    let store = EventStore::new(pool);
    let first = setup(&store, WriterConfig::default()).await;
    // A second process: its own writer with its own cached state, sharing only the database.
    let second = Writers::new(store.clone(), WriterConfig::default());
    let ledger = main_ledger();
    let mut tasks = Vec::new();
    for caller in 0..32u32 {
        let writers = alternate(caller, &first, &second);
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..15u32 {
                // Callers pair up on ids, so both instances race to book the same transfer.
                let id = Uuid::from_u128(u128::from(caller / 2) << 32 | u128::from(i));
                let a = accepted(
                    writers
                        .submit(&ledger, sub(transfer(id, "equity:capital", "assets:b", 7)))
                        .await,
                );
                ids.push((id, a.duplicate));
            }
            ids
        }));
    }
    let mut fresh = HashSet::new();
    let mut answers = 0;
    for t in tasks {
        for (id, duplicate) in t.await.expect("caller task") {
            answers += 1;
            if !duplicate {
                assert!(fresh.insert(id), "transfer {id} was booked twice");
            }
        }
    }
    assert_eq!(answers, 32 * 15);
    assert_eq!(
        fresh.len(),
        16 * 15,
        "every distinct transfer was booked exactly once"
    );
    assert_books(&store, &ledger, 4 + 16 * 15, 16 * 15 * 7).await;
    first.shutdown().await;
    second.shutdown().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_refused_command_does_not_fail_the_others_in_its_batch(pool: PgPool) {
    let store = EventStore::new(pool);
    let writers = setup(&store, WriterConfig::default()).await;
    let ledger = main_ledger();
    let items = vec![
        sub(transfer(
            Uuid::from_u128(1),
            "equity:capital",
            "assets:a",
            10,
        )),
        // assets:b may not go below zero.
        sub(transfer(Uuid::from_u128(2), "assets:b", "assets:a", 10)),
        sub(transfer(Uuid::from_u128(3), "assets:a", "assets:b", 4)),
    ];
    let results = writers
        .submit_batch(&ledger, items, false)
        .await
        .expect("batch answered");
    assert!(results[0].is_ok());
    assert!(
        matches!(results[1], Err(DomainError::LimitExceeded { .. })),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().map(|a| a.version), Ok(6));
    assert_eq!(replay(&store, &ledger).await.version, 6);
    writers.shutdown().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_refused_atomic_batch_writes_nothing(pool: PgPool) {
    let store = EventStore::new(pool);
    let writers = setup(&store, WriterConfig::default()).await;
    let ledger = main_ledger();
    let items = vec![
        sub(transfer(
            Uuid::from_u128(1),
            "equity:capital",
            "assets:a",
            10,
        )),
        sub(transfer(Uuid::from_u128(2), "assets:a", "assets:b", 11)),
    ];
    let results = writers
        .submit_batch(&ledger, items, true)
        .await
        .expect("batch answered");
    assert_eq!(
        results[0],
        Err(DomainError::BatchAborted { failed_index: 1 })
    );
    assert!(matches!(results[1], Err(DomainError::LimitExceeded { .. })));
    assert_eq!(replay(&store, &ledger).await.version, 4);
    let items = vec![
        sub(transfer(
            Uuid::from_u128(1),
            "equity:capital",
            "assets:a",
            10,
        )),
        sub(transfer(Uuid::from_u128(2), "assets:a", "assets:b", 10)),
    ];
    let results = writers
        .submit_batch(&ledger, items, true)
        .await
        .expect("batch answered");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(replay(&store, &ledger).await.version, 6);
    writers.shutdown().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn shutdown_answers_every_accepted_command(pool: PgPool) {
    let store = EventStore::new(pool);
    let writers = setup(&store, WriterConfig::default()).await;
    let ledger = main_ledger();
    let mut tasks = Vec::new();
    for i in 0..200u128 {
        let writers = writers.clone();
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            writers
                .submit(
                    &ledger,
                    sub(transfer(
                        Uuid::from_u128(i),
                        "equity:capital",
                        "assets:a",
                        1,
                    )),
                )
                .await
        }));
    }
    tokio::task::yield_now().await;
    writers.shutdown().await;
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => panic!("refused: {e:?}"),
            // Submitted after shutdown began: refused up front, never half-applied.
            Err(tally_writer::WriteError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(replay(&store, &ledger).await.version, 4 + ok);
}

/// The writer decides a ledger's next batch while the previous one commits, chained on its head. With two
/// instances racing on one ledger, chained batches keep meeting predecessors that lost the race: each such
/// batch must be refused by the store and decided again, never committed on the other instance's head.
#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn pipelined_batches_of_two_instances_on_one_ledger_lose_and_double_nothing(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let first = setup(&store, WriterConfig::default()).await;
    // Its own store too (own head cache, own pool), as a second process would have.
    let other = EventStore::new(pool);
    let second = Writers::new(other, WriterConfig::default());
    let ledger = main_ledger();
    let mut tasks = Vec::new();
    for caller in 0..64u32 {
        let writers = alternate(caller, &first, &second);
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..20u32 {
                let id = Uuid::from_u128(u128::from(caller) << 32 | u128::from(i));
                let a = accepted(
                    writers
                        .submit(&ledger, sub(transfer(id, "equity:capital", "assets:b", 5)))
                        .await,
                );
                assert!(!a.duplicate, "a fresh id answered as a duplicate");
                answers.push(a.version);
            }
            answers
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.extend(t.await.expect("caller task"));
    }
    // Each accepted transfer has its own version, and together they are every version after the setup.
    versions.sort_unstable();
    assert_eq!(versions, (5..=4 + 64 * 20).collect::<Vec<u64>>());
    assert_books(&store, &ledger, 4 + 64 * 20, 64 * 20 * 5).await;
    first.shutdown().await;
    second.shutdown().await;
}

/// Large batches that arrive while a batch appends are decided before its statement ends (the overlap the
/// batch endpoint lives on), then sent chained on the head it announced, before its events have even
/// arrived. With two instances racing on one ledger, those early decisions keep resting on predecessors
/// that lost the race: each must be decided again, and every transfer committed exactly once.
#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn large_batches_decided_during_an_append_lose_and_double_nothing(pool: PgPool) {
    const CALLERS: u32 = 6;
    const ROUNDS: u32 = 3;
    // Above the writer's threshold for deciding early.
    const ITEMS: u32 = 600;
    // One caller's batch per transaction, so the others' arrive while it appends.
    let config = WriterConfig {
        max_batch_items: ITEMS as usize,
        ..WriterConfig::default()
    };
    let store = EventStore::new(pool.clone());
    let first = setup(&store, config.clone()).await;
    let second = Writers::new(EventStore::new(pool), config);
    let ledger = main_ledger();
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let writers = alternate(caller, &first, &second);
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for round in 0..ROUNDS {
                let items = (0..ITEMS)
                    .map(|i| {
                        let id = Uuid::from_u128(
                            u128::from(caller) << 64 | u128::from(round) << 32 | u128::from(i),
                        );
                        sub(transfer(id, "equity:capital", "assets:b", 5))
                    })
                    .collect();
                let results = writers
                    .submit_batch(&ledger, items, false)
                    .await
                    .expect("batch answered");
                for result in results {
                    let accepted = result.expect("every transfer is accepted");
                    assert!(!accepted.duplicate, "a fresh id answered as a duplicate");
                    versions.push(accepted.version);
                }
            }
            versions
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let answered = tokio::time::timeout(std::time::Duration::from_secs(120), t)
            .await
            .expect("every batch is answered");
        versions.extend(answered.expect("caller task"));
    }
    let total = u64::from(CALLERS * ROUNDS * ITEMS);
    versions.sort_unstable();
    assert_eq!(versions, (5..=4 + total).collect::<Vec<u64>>());
    assert_books(&store, &ledger, 4 + total, i128::from(total) * 5).await;
    first.shutdown().await;
    second.shutdown().await;
}

/// The two instances take callers in turn.
fn alternate(caller: u32, first: &Writers, second: &Writers) -> Writers {
    if caller.is_multiple_of(2) {
        first.clone()
    } else {
        second.clone()
    }
}

/// The ledger replays to `version` with `posted` on `assets:b`, and its hash chain is intact.
async fn assert_books(store: &EventStore, ledger: &LedgerId, version: u64, posted: i128) {
    let state = replay(store, ledger).await;
    assert_eq!(state.version, version);
    let b = AccountBalance::of(state.account(&code("assets:b")).expect("exists"));
    assert_eq!(b.posted, posted);
    assert!(
        store
            .verify_stream(ledger.as_str())
            .await
            .expect("verify")
            .is_intact()
    );
}
