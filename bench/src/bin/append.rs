//! `append`: the event-store benchmark of issue 3. Closed-loop callers submit single two-leg transfers
//! through the group-commit writer for a fixed time; the binary prints one JSON line of figures.
//!
//! Each run starts from an empty database (dropped and created again), so runs do not influence each
//! other through table or index size. `bench/run` calls this next to the pgbench baseline.

// The same allocator as the `tally` binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use serde::Serialize;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_domain::{
    AccountCode, AccountType, Amount, CommandKind, Currency, CurrencyCode, LedgerId, LegSpec,
    Limits, Metadata, Side, TransferId, TransferSpec,
};
use tally_eventstore::{EventMetadata, EventStore, MIGRATOR};
use tally_writer::{Submission, WriterConfig, Writers};
use tokio::task::JoinSet;
use uuid::Uuid;

/// Appends transfers through the group-commit writer with concurrent closed-loop callers and prints one
/// JSON line: events appended per second and the latency callers saw.
#[derive(Debug, Parser)]
#[command(name = "append", about)]
struct Args {
    /// The benchmark's own database. It is dropped and created afresh on every run, so its name must
    /// contain "bench".
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/tally_bench"
    )]
    database_url: String,
    /// Ledgers the callers spread their transfers over, round-robin. Capped because each one is set up
    /// before the clock starts and holds a writer task.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    ledgers: u32,
    /// Concurrent callers; each awaits its answer before submitting the next transfer, like a pgbench
    /// client. Capped well below the writer's per-ledger queue capacity, so no submission is ever refused
    /// as overloaded.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_024))]
    callers: u32,
    /// Seconds measured.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    seconds: u64,
    /// Seconds run before measuring, so connections are open and caches warm when the clock starts.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// The writer's `snapshot_every` (events between snapshots); default: the writer's own default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: Option<u64>,
    /// The writer's `committers` (transactions appending at once); default: the writer's own default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    committers: Option<u64>,
    /// Random (v4) transfer ids instead of time-ordered (v7) ones. The ids are the clients' idempotency
    /// keys and the store keeps a unique index on them: random ones land on random pages of that index,
    /// which costs PostgreSQL about a fifth of its insert rate here (BENCHMARKS.md).
    #[arg(long)]
    random_ids: bool,
}

/// The figures of one run, printed as one JSON line (the field order is the documented one).
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    ledgers: u32,
    callers: u32,
    seconds: u64,
    /// Transfers accepted within the measured window; each appends exactly one event.
    events: u64,
    events_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Transactions that appended transfers, over the whole run (warm-up included).
    commits: i64,
    /// Transfers per appending transaction: the group-commit batch size, over the whole run.
    mean_batch: f64,
}

/// Connections beyond the callers': the writer's loads and snapshots and the bench's own queries.
const SPARE_CONNECTIONS: u32 = 4;
/// More connections than this would only queue inside PostgreSQL on two cores; it also keeps the bench
/// far below the server's default `max_connections` of 100 while other processes use the server.
const MAX_CALLER_CONNECTIONS: u32 = 32;
/// A caller waiting this long for a connection means the database is stuck: fail rather than report.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Each transfer moves this many cents, as in the pgbench baseline's payload.
const AMOUNT: i128 = 12_345;
const DEBIT_ACCOUNT: &str = "assets:bank:checking";
const CREDIT_ACCOUNT: &str = "revenue:sales";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = fresh_database(&args).await?;
    let store = EventStore::new(pool.clone());
    let mut config = WriterConfig::default();
    if let Some(every) = args.snapshot_every {
        config.snapshot_every = every;
    }
    if let Some(committers) = args.committers {
        config.committers = committers as usize;
    }
    let writers = Writers::new(store, config);
    let ledgers = create_ledgers(&writers, args.ledgers).await?;

    let started = Instant::now();
    let window = Window {
        from: started + Duration::from_secs(args.warmup),
        until: started + Duration::from_secs(args.warmup + args.seconds),
    };
    let mut callers = JoinSet::new();
    for index in 0..args.callers as usize {
        callers.spawn(caller(
            writers.clone(),
            Arc::clone(&ledgers),
            index,
            window,
            args.random_ids,
        ));
    }
    let mut latencies_us = Vec::new();
    while let Some(joined) = callers.join_next().await {
        // The first failure ends the run; dropping the set aborts the other callers.
        latencies_us.extend(joined.context("a caller task panicked")??);
    }
    writers.shutdown().await;

    latencies_us.sort_unstable();
    let events = latencies_us.len() as u64;
    ensure!(
        events > 0,
        "no transfer completed within the measured window"
    );
    let (commits, transfers) = batches(&pool).await?;
    let report = Report {
        bench: "writer_append",
        ledgers: args.ledgers,
        callers: args.callers,
        seconds: args.seconds,
        events,
        events_per_s: round(events as f64 / args.seconds as f64, 1),
        p50_ms: round(percentile(&latencies_us, 0.50) as f64 / 1_000.0, 3),
        p99_ms: round(percentile(&latencies_us, 0.99) as f64 / 1_000.0, 3),
        commits,
        mean_batch: round(transfers as f64 / commits.max(1) as f64, 2),
    };
    println!(
        "{}",
        serde_json::to_string(&report).context("serialise the report")?
    );
    pool.close().await;
    Ok(())
}

/// Drops and creates the database `args.database_url` names, applies the migrations and returns a pool
/// sized for the callers.
async fn fresh_database(args: &Args) -> anyhow::Result<PgPool> {
    let url = &args.database_url;
    let options = PgConnectOptions::from_str(url).context("parse --database-url")?;
    let name = options.get_database().unwrap_or_default().to_owned();
    // A guard against pointing the bench at a real database by mistake: it is about to be dropped.
    if !name.contains("bench") {
        bail!(
            "refusing to drop database {name:?}: the bench database's name must contain \"bench\""
        );
    }
    if sqlx::Postgres::database_exists(url)
        .await
        .with_context(|| format!("reach PostgreSQL for database {name}"))?
    {
        sqlx::Postgres::force_drop_database(url)
            .await
            .with_context(|| format!("drop database {name}"))?;
    }
    sqlx::Postgres::create_database(url)
        .await
        .with_context(|| format!("create database {name}"))?;
    let pool = PgPoolOptions::new()
        .max_connections(args.callers.min(MAX_CALLER_CONNECTIONS) + SPARE_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .with_context(|| format!("connect to database {name}"))?;
    MIGRATOR.run(&pool).await.context("apply migrations")?;
    Ok(pool)
}

/// Creates `count` ledgers, each with the two accounts every transfer moves money between. The accounts
/// have no limits, so no transfer is ever refused.
async fn create_ledgers(writers: &Writers, count: u32) -> anyhow::Result<Arc<[LedgerId]>> {
    let currency = Currency::new(eur(), 2).context("currency")?;
    let mut ledgers = Vec::with_capacity(count as usize);
    for i in 0..count {
        let ledger = LedgerId::parse(&format!("bench-{i:05}")).context("ledger id")?;
        let open = |code: &str, account_type| -> anyhow::Result<CommandKind> {
            Ok(CommandKind::OpenAccount {
                code: AccountCode::parse(code).context("account code")?,
                account_type,
                currency: currency.clone(),
                limits: Limits::new(None, None).context("limits")?,
                metadata: Metadata::default(),
            })
        };
        let commands = [
            CommandKind::CreateLedger {
                name: format!("Bench {i}"),
            },
            open(DEBIT_ACCOUNT, AccountType::Asset)?,
            open(CREDIT_ACCOUNT, AccountType::Revenue)?,
        ];
        let results = writers
            .submit_batch(
                &ledger,
                commands.into_iter().map(submission).collect(),
                true,
            )
            .await
            .with_context(|| format!("create ledger {ledger}"))?;
        for result in results {
            if let Err(refused) = result {
                bail!("ledger {ledger} refused its setup: {refused}");
            }
        }
        ledgers.push(ledger);
    }
    Ok(ledgers.into())
}

/// When the clock runs: transfers completing in `[from, until)` are counted.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

/// One closed-loop caller: submits a transfer, awaits its answer, repeats until the window closes.
/// Returns the latency in microseconds of every transfer that completed within the window.
async fn caller(
    writers: Writers,
    ledgers: Arc<[LedgerId]>,
    index: usize,
    window: Window,
    random_ids: bool,
) -> anyhow::Result<Vec<u64>> {
    let mut latencies_us = Vec::new();
    // Callers start at different ledgers so that, with many ledgers, they are spread from the start.
    let mut next = index;
    loop {
        let sent = Instant::now();
        if sent >= window.until {
            return Ok(latencies_us);
        }
        let ledger = &ledgers[next % ledgers.len()];
        next += 1;
        let id = if random_ids {
            Uuid::new_v4()
        } else {
            Uuid::now_v7()
        };
        let answer = writers
            .submit(ledger, submission(transfer(id)?))
            .await
            .with_context(|| format!("append to ledger {ledger}"))?;
        match answer {
            Ok(accepted) if !accepted.duplicate => {}
            Ok(_) => bail!("ledger {ledger} took a fresh transfer id for a duplicate"),
            Err(refused) => bail!("ledger {ledger} refused a transfer: {refused}"),
        }
        let done = Instant::now();
        if done >= window.from && done < window.until {
            latencies_us.push(u64::try_from(done.duration_since(sent).as_micros())?);
        }
    }
}

/// A two-leg transfer between the ledger's two accounts, like the baseline's payload.
fn transfer(id: Uuid) -> anyhow::Result<CommandKind> {
    let leg = |account: &str, side| -> anyhow::Result<LegSpec> {
        Ok(LegSpec {
            account: AccountCode::parse(account).context("account code")?,
            side,
            amount: Amount::new(AMOUNT).context("amount")?,
            currency: eur(),
        })
    };
    Ok(CommandKind::RecordTransfer(TransferSpec {
        id: TransferId(id),
        legs: vec![
            leg(DEBIT_ACCOUNT, Side::Debit)?,
            leg(CREDIT_ACCOUNT, Side::Credit)?,
        ],
        effective_at: None,
        description: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        metadata: Metadata::default(),
        pending: None,
    }))
}

fn eur() -> CurrencyCode {
    CurrencyCode::parse("EUR").expect("EUR is a valid currency code")
}

fn submission(kind: CommandKind) -> Submission {
    Submission {
        kind,
        metadata: EventMetadata {
            actor: "user-000000".into(),
            client: "tally-bench".into(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
        },
    }
}

/// Appending transactions and the transfers they carried, over the whole run.
async fn batches(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    sqlx::query_as("select count(distinct tx), count(*) from events where transfer_id is not null")
        .fetch_one(pool)
        .await
        .context("count appending transactions")
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
