//! Projection benchmarks (issue 5), run by `bench/run-projection`.
//!
//! `projection roles`: runs the outbox relay and the projector (as `tally all` will) against the database,
//! on an exchange and a quorum queue with unique names (deleted at the end), and measures projection lag:
//! every 10 ms it reads the ledger's projected version from `read.checkpoints` and, for every event newly
//! projected since the previous poll, records `clock_timestamp() - recorded_at` (an upper bound of the
//! event's lag, at most one poll interval late). On SIGINT/SIGTERM it keeps polling until the projection
//! has caught up with the stream head (or `--drain-timeout`), stops, and writes one NDJSON line per event
//! (`recorded_at_us`, `lag_ms`) to `--samples`; `bench/run-projection` filters them by the load window.
//!
//! `projection rebuild`: times `tally_projector::rebuild::rebuild` (blue/green rebuild of every read model
//! from the store, the code behind `tally projections rebuild`) and, as the same-run baseline, PostgreSQL
//! copying the same events table into a fresh table (`create table … as select * from
//! events`): reading every event and writing one row each, with nothing projected. One JSON line.

// The same allocator as the `tally` binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use sqlx::PgPool;
use tally_eventstore::EventStore;
use tally_messaging::{AmqpConfig, Relay, RelayConfig};
use tally_projector::{PROJECTION, Projector, ProjectorConfig};
use tokio::sync::watch;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run relay + projector and sample projection lag until SIGINT/SIGTERM.
    Roles {
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp_uri: String,
        /// The ledger whose lag is sampled.
        #[arg(long, default_value = "bench")]
        ledger: String,
        #[arg(long)]
        samples: std::path::PathBuf,
        #[arg(long, default_value_t = 120)]
        drain_timeout: u64,
    },
    /// Time the blue/green rebuild against a same-run copy of the events table.
    Rebuild,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The roles log through `tracing`; RUST_LOG picks what shows (e.g. their debug timings).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&args.database_url)
        .await
        .context("connect to the bench database")?;
    match args.command {
        Command::Roles {
            amqp_uri,
            ledger,
            samples,
            drain_timeout,
        } => roles(pool, amqp_uri, ledger, samples, drain_timeout).await,
        Command::Rebuild => rebuild(pool).await,
    }
}

async fn roles(
    pool: PgPool,
    amqp_uri: String,
    ledger: String,
    samples: std::path::PathBuf,
    drain_timeout: u64,
) -> anyhow::Result<()> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let amqp = AmqpConfig {
        uri: amqp_uri,
        exchange: format!("tally.bench.events.{id}"),
    };
    let queue = format!("tally.bench.projection.{id}");
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let relay = tokio::spawn(
        Relay::new(
            pool.clone(),
            RelayConfig {
                amqp: amqp.clone(),
                name: format!("bench-{id}"),
                ..RelayConfig::default()
            },
        )
        .run(stopped(stop_rx.clone())),
    );
    let projector = tokio::spawn(
        Projector::new(
            pool.clone(),
            ProjectorConfig {
                amqp: amqp.clone(),
                queue: queue.clone(),
                ..ProjectorConfig::default()
            },
        )
        .run(stopped(stop_rx.clone())),
    );
    eprintln!(
        "relay and projector running (exchange {}, queue {queue})",
        amqp.exchange
    );

    let mut signal = Box::pin(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(&samples)?);
    let mut seen: i64 = 0;
    let mut draining_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut count = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut signal, if draining_since.is_none() => {
                draining_since = Some(Instant::now());
                eprintln!("draining: waiting for the projection to catch up");
            }
        }
        let rows: Vec<(i64, i64, f64)> = sqlx::query_as(
            "select e.version, (extract(epoch from e.recorded_at) * 1e6)::bigint, \
                    extract(epoch from clock_timestamp() - e.recorded_at)::float8 * 1000 \
             from read.checkpoints c \
             join events e on e.stream_id = c.ledger_id and e.version > $3 and e.version <= c.version \
             where c.projection = $1 and c.ledger_id = $2 order by e.version",
        )
        .bind(PROJECTION)
        .bind(&ledger)
        .bind(seen)
        .fetch_all(&pool)
        .await?;
        for (version, recorded_at_us, lag_ms) in rows {
            seen = seen.max(version);
            count += 1;
            writeln!(
                out,
                "{{\"recorded_at_us\":{recorded_at_us},\"lag_ms\":{lag_ms:.3}}}"
            )?;
        }
        if let Some(since) = draining_since {
            let head: Option<i64> =
                sqlx::query_scalar("select version from streams where stream_id = $1")
                    .bind(&ledger)
                    .fetch_optional(&pool)
                    .await?;
            let caught_up = head.is_none_or(|h| seen >= h);
            if caught_up || since.elapsed() > Duration::from_secs(drain_timeout) {
                eprintln!(
                    "projected {seen} of {} events of {ledger}; drained in {:.1} s",
                    head.unwrap_or(0),
                    since.elapsed().as_secs_f64()
                );
                break;
            }
        }
    }
    out.flush()?;
    stop_tx.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), projector).await;
    // Remove the bench's queue and exchange from the shared broker.
    if let Ok(connection) = tally_messaging::connect(&amqp).await
        && let Ok(channel) = connection.create_channel().await
    {
        let _ = channel
            .queue_delete(&queue, lapin::options::QueueDeleteOptions::default())
            .await;
        let _ = channel
            .exchange_delete(
                &amqp.exchange,
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
    }
    eprintln!("{count} lag samples written to {samples:?}");
    Ok(())
}

async fn rebuild(pool: PgPool) -> anyhow::Result<()> {
    let store = EventStore::new(pool.clone());
    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await?;
    let ledgers: i64 = sqlx::query_scalar("select count(*) from streams")
        .fetch_one(&pool)
        .await?;
    sqlx::query("checkpoint").execute(&pool).await?;

    // Baseline: PostgreSQL alone reading every event and writing one row per event.
    sqlx::query("drop table if exists bench_events_copy")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    sqlx::query("create table bench_events_copy as select * from events")
        .execute(&pool)
        .await?;
    let copy_seconds = started.elapsed().as_secs_f64();
    sqlx::query("drop table bench_events_copy")
        .execute(&pool)
        .await?;
    sqlx::query("checkpoint").execute(&pool).await?;

    let started = Instant::now();
    let applied = tally_projector::rebuild::rebuild(&pool, &store, &mut |_| {})
        .await
        .context("rebuild")?;
    let seconds = started.elapsed().as_secs_f64();
    let rebuild_rate = applied as f64 / seconds;
    let copy_rate = events as f64 / copy_seconds;
    println!(
        "{}",
        json!({
            "bench": "projection_rebuild",
            "ledgers": ledgers,
            "events": events,
            "applied": applied,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "events_per_s": rebuild_rate.round(),
            "baseline": "pg_copy_events",
            "baseline_seconds": (copy_seconds * 1000.0).round() / 1000.0,
            "baseline_rows_per_s": copy_rate.round(),
            "ratio": (rebuild_rate / copy_rate * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
