//! Commands → store → relay → RabbitMQ → projector → read models, with crashes and fail-over.

use crate::fixtures::*;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tally_messaging::Relay;
use tally_projector::{Projector, rebuild};
use tokio::sync::oneshot;

fn spawn_relay(pool: &PgPool, names: &Names) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let relay = Relay::new(pool.clone(), names.relay());
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

fn spawn_projector(pool: &PgPool, names: &Names) -> tokio::task::JoinHandle<()> {
    let projector = Projector::new(pool.clone(), names.projector());
    tokio::spawn(projector.run(std::future::pending()))
}

/// A projector as if in a process of its own: with its own connections, which die with it.
struct Process {
    task: tokio::task::JoinHandle<()>,
    pool: PgPool,
}

impl Process {
    async fn start(pool: &PgPool, names: &Names) -> Self {
        let own = PgPoolOptions::new()
            .max_connections(4)
            .connect_with((*pool.connect_options()).clone())
            .await
            .expect("connect");
        Self {
            task: spawn_projector(&own, names),
            pool: own,
        }
    }

    /// Stops it wherever it is, and ends its sessions as a killed process's would end, so PostgreSQL
    /// rolls back what it had open. Aborting the task alone is no kill: a transaction cancelled midway
    /// can go back to a shared pool still open, holding its row locks.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
        self.pool.close().await;
    }
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn every_event_reaches_the_read_models_exactly(pool: PgPool) {
    let names = Names::unique();
    let traffic = Traffic::start(&pool).await;
    let (stop_relay, relay) = spawn_relay(&pool, &names);
    let projector = spawn_projector(&pool, &names);
    // Traffic while both run, so the messages (not only the start-up catch-up) carry the events.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    traffic.mixed("alpha", 100).await;
    traffic.admin("beta").await;
    traffic.mixed("beta", 200).await;
    assert_caught_up(&pool, "projection did not catch up").await;
    assert_same_as_rebuild(&pool, &traffic.store).await;

    // Spot-check the numbers themselves: cash took 10,000, sent 2,500 (reversed), 600 to rent.
    let (posted_debits, posted_credits): (String, String) = sqlx::query_as(
        "select debits_posted::text, credits_posted::text from read.accounts \
         where ledger_id = 'alpha' and code = 'assets:cash'",
    )
    .fetch_one(&pool)
    .await
    .expect("cash row");
    assert_eq!(
        (posted_debits.as_str(), posted_credits.as_str()),
        ("12500", "3100")
    );
    let last_balance: String = sqlx::query_scalar(
        "select balance_after::text from read.entries where ledger_id = 'alpha' and account = 'assets:bank' \
         order by effective_at desc, version desc, leg desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("bank entries");
    assert_eq!(
        last_balance, "-700",
        "2,500 in, 700 out (backdated), 2,500 reversed"
    );
    let statuses: Vec<(String, String)> = sqlx::query_as(
        "select transfer_id::text, status from read.transfers where ledger_id = 'alpha' order by created_version",
    )
    .fetch_all(&pool)
    .await
    .expect("transfers");
    let statuses: Vec<&str> = statuses.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["posted", "reversed", "posted", "posted", "voided", "posted"]
    );
    // Every entry carries its transfer's description (a posted pending transfer's too, the backdated
    // one's as well); only the reversal's entries have none.
    let described: Vec<(String, String)> = sqlx::query_as(
        "select t.status, e.description from read.entries e \
         join read.transfers t on t.ledger_id = e.ledger_id and t.transfer_id = e.transfer_id \
         where e.ledger_id = 'alpha' and (e.description <> t.description or e.description = '') \
         order by e.version, e.leg",
    )
    .fetch_all(&pool)
    .await
    .expect("entry descriptions");
    assert_eq!(
        described,
        [
            ("posted".to_owned(), String::new()),
            ("posted".to_owned(), String::new())
        ],
        "only the reversal's two entries lack a description"
    );
    // Each account's row says where its statement ends (what the projector books the next group
    // against), and its net posted total is the running balance there.
    type StatementEnd = (
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
    );
    let statement_ends: Vec<StatementEnd> = sqlx::query_as(
            "select a.ledger_id, a.code, a.last_entry_at::text, last.effective_at::text, \
                    (case a.normal_side when 'debit' then a.debits_posted - a.credits_posted \
                                        else a.credits_posted - a.debits_posted end)::text, \
                    coalesce(last.balance_after, 0)::text \
             from read.accounts a \
             left join lateral (select effective_at, balance_after from read.entries e \
                                where e.ledger_id = a.ledger_id and e.account = a.code \
                                order by effective_at desc, version desc, leg desc limit 1) last on true \
             order by a.ledger_id, a.code",
        )
        .fetch_all(&pool)
        .await
        .expect("statement ends");
    assert!(statement_ends.len() >= 8, "{statement_ends:?}");
    assert!(
        statement_ends.iter().any(|s| s.2.is_some()),
        "{statement_ends:?}"
    );
    for (ledger, code, kept_at, last_at, net, last_balance) in &statement_ends {
        assert_eq!(kept_at, last_at, "{ledger} {code}: last entry's time");
        assert_eq!(net, last_balance, "{ledger} {code}: balance after it");
    }

    let _ = stop_relay.send(());
    relay.await.expect("relay task");
    projector.abort();
    names.delete().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn events_no_message_carries_are_brought_in_by_the_sweep(pool: PgPool) {
    // No relay at all: after the start-up catch-up, only the sweep can read these events from the store.
    let names = Names::unique();
    let projector = Projector::new(
        pool.clone(),
        tally_projector::ProjectorConfig {
            sweep_interval: std::time::Duration::from_millis(200),
            ..names.projector()
        },
    );
    let projector = tokio::spawn(projector.run(std::future::pending()));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 100).await;
    assert_caught_up(&pool, "the sweep did not bring the ledger up to the store").await;
    assert_same_as_rebuild(&pool, &traffic.store).await;
    projector.abort();
    names.delete().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_killed_projector_resumes_and_ends_equal_to_a_rebuild(pool: PgPool) {
    let names = Names::unique();
    let traffic = Traffic::start(&pool).await;
    let (stop_relay, relay) = spawn_relay(&pool, &names);
    let mut first = Some(Process::start(&pool, &names).await);
    for i in 0..20u128 {
        traffic
            .must(
                "alpha",
                transfer(1_000 + i, "equity:capital", "assets:cash", 5),
            )
            .await;
        if i == 10
            && let Some(first) = first.take()
        {
            // Killed mid-stream: whatever it had not acked is redelivered to its successor.
            first.kill().await;
        }
    }
    let second = spawn_projector(&pool, &names);
    traffic.mixed("beta", 300).await;
    assert_caught_up(&pool, "projection did not catch up").await;
    assert_same_as_rebuild(&pool, &traffic.store).await;
    let _ = stop_relay.send(());
    relay.await.expect("relay task");
    second.abort();
    names.delete().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn with_two_projectors_the_standby_takes_over_when_the_active_one_dies(pool: PgPool) {
    let names = Names::unique();
    let traffic = Traffic::start(&pool).await;
    let (stop_relay, relay) = spawn_relay(&pool, &names);
    let active = Process::start(&pool, &names).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let standby = spawn_projector(&pool, &names);
    traffic.mixed("alpha", 400).await;
    assert_caught_up(&pool, "projection did not catch up").await;
    active.kill().await;
    // Only the standby is left; its sweep is hours away, so messages alone must carry these events.
    traffic.mixed("beta", 500).await;
    assert_caught_up(&pool, "the standby did not take over").await;
    assert_same_as_rebuild(&pool, &traffic.store).await;
    let _ = stop_relay.send(());
    relay.await.expect("relay task");
    standby.abort();
    names.delete().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_rebuild_swaps_in_tables_equal_to_the_live_ones(pool: PgPool) {
    let names = Names::unique();
    let traffic = Traffic::start(&pool).await;
    traffic.admin("beta").await;
    traffic.mixed("alpha", 600).await;
    traffic.must("alpha", awkward(700)).await;
    let store = traffic.store.clone();
    tally_projector::catch_up_all(&pool, &store, "read", &mut |_| {})
        .await
        .expect("project");
    let before: i64 = sqlx::query_scalar("select count(*) from read.entries")
        .fetch_one(&pool)
        .await
        .expect("count");
    // The incremental path that built these tables against the bulk fold `differences` uses.
    assert_same_as_rebuild(&pool, &store).await;
    let indexes = || async {
        sqlx::query_as::<_, (String, String)>(
            "select indexname::text, indexdef from pg_indexes where schemaname = 'read' order by 1",
        )
        .fetch_all(&pool)
        .await
        .expect("indexes")
    };
    let indexes_before = indexes().await;
    let mut seen = 0;
    let total = rebuild::rebuild(&pool, &store, &mut |n| seen = n)
        .await
        .expect("rebuild");
    assert!(total > 0 && seen > 0, "total {total} seen {seen}");
    let after: i64 = sqlx::query_scalar("select count(*) from read.entries")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(before, after);
    assert_same_as_rebuild(&pool, &store).await;
    // Built after the load, under the names the migrations gave them.
    assert_eq!(indexes().await, indexes_before);
    let leftovers: i64 = sqlx::query_scalar(
        "select count(*) from pg_namespace where nspname in ('read_next', 'read_old', 'read_verify')",
    )
    .fetch_one(&pool)
    .await
    .expect("schemas");
    assert_eq!(leftovers, 0);
    names.delete().await;
}

#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_group_large_enough_to_be_copied_is_written_exactly(pool: PgPool) {
    let traffic = Traffic::start(&pool).await;
    traffic.mixed("alpha", 100).await;
    traffic.must("alpha", awkward(2_000)).await;
    let many = |first: u128, from: &str, to: &str| {
        (0..600u128)
            .map(|n| transfer(first + n, from, to, 1 + n as i128))
            .collect()
    };
    // 600 transfers, 1,800 rows: one catch-up group well past the size from which on the live path
    // sends its new entries and transfers with binary COPY instead of one statement. The backdated
    // transfer of the mix after them has the 1,200 entries before it written first, also by COPY; the
    // transfers (the awkward one's text among them) wait for the end of the group.
    traffic
        .batch("alpha", many(1_000, "equity:capital", "assets:cash"))
        .await;
    traffic.mixed("alpha", 3_000).await;
    // And 1,200 more entries for the end of the group.
    traffic
        .batch("alpha", many(4_000, "assets:cash", "assets:bank"))
        .await;
    let store = traffic.store.clone();
    let projected = tally_projector::catch_up_all(&pool, &store, "read", &mut |_| {})
        .await
        .expect("project");
    assert!(projected > 600, "projected {projected}");
    let entries: i64 = sqlx::query_scalar("select count(*) from read.entries")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert!(entries > 2_400, "entries {entries}");
    assert_same_as_rebuild(&pool, &store).await;
    // The comparison's bulk fold encodes transfer rows with the same code, so check the text as given.
    let (description, note): (String, String) = sqlx::query_as(
        "select description, metadata ->> 'note' from read.transfers where transfer_id = $1",
    )
    .bind(uuid::Uuid::from_u128(2_000))
    .fetch_one(&pool)
    .await
    .expect("the awkward transfer");
    assert_eq!(
        (description.as_str(), note.as_str()),
        (AWKWARD_DESCRIPTION, AWKWARD_NOTE)
    );
}
