//! Blue/green rebuild: build fresh read models from the store in a scratch schema, catch up, then swap
//! schemas in one short transaction while readers keep reading the old tables until the swap.

mod fold;
mod indexes;
mod load;
mod write;

use crate::checkpoints::{LedgerStatus, ledger_status};
use crate::copy::{copy_entries, copy_transfers};
use crate::error::ProjectionError;
use crate::live::catch_up_all;
use fold::fold_ledger;
use futures_util::{StreamExt, stream};
use indexes::IndexPlan;
use load::Loader;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Instant;
use tally_eventstore::{EventStore, StreamInfo};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use write::{Sinks, write_ledger};

pub(crate) use load::Sink;

/// The tables of the `read` schema, in creation order.
pub const TABLES: &[&str] = &[
    "ledgers",
    "accounts",
    "transfers",
    "entries",
    "daily_volumes",
    "checkpoints",
];

/// Ledgers read and folded at once: one folds in Rust while PostgreSQL reads the other's pages.
const LEDGERS_AT_ONCE: usize = 2;
/// Ledgers held in memory at once, from the start of their read to the end of their load: the loaders
/// take ledgers in order, so a small ledger folded early may wait for a large one before it.
const LEDGERS_IN_MEMORY: usize = 3;

/// Creates `schema` afresh with empty copies (columns, defaults, constraints) of the `read` tables,
/// without their indexes: [`create_indexes`] builds those once the rows are in, which is cheaper than
/// maintaining them row by row.
pub async fn create_scratch(pool: &PgPool, schema: &str) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("drop schema if exists {schema} cascade"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("create schema {schema}"))
        .execute(&mut *tx)
        .await?;
    for table in TABLES {
        sqlx::query(&format!(
            "create table {schema}.{table} (like read.{table} including all excluding indexes)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Gives the tables of `schema` the primary keys, unique constraints and indexes of `read`, under the
/// same names, so that a swapped-in schema looks exactly like the one the migrations made.
pub async fn create_indexes(pool: &PgPool, schema: &str) -> Result<(), ProjectionError> {
    let plan = IndexPlan::of_read(pool, schema).await?;
    for table in plan.tables() {
        plan.build(pool, table).await?;
    }
    Ok(())
}

/// Builds every read model from the store into the fresh schema `schema`: each ledger folded in
/// memory, transfers and entries each loaded by one `COPY` and indexed as soon as that load ends,
/// then a second pass for what was appended meanwhile.
async fn build(
    pool: &PgPool,
    store: &EventStore,
    schema: &str,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, ProjectionError> {
    create_scratch(pool, schema).await?;
    let plan = IndexPlan::of_read(pool, schema).await?;
    let streams = store.list_streams().await?;
    let (transfers, transfer_sinks) = Loader::start(
        pool,
        "transfers",
        copy_transfers(Some(schema)),
        streams.len(),
    );
    let (entries, entry_sinks) =
        Loader::start(pool, "entries", copy_entries(Some(schema)), streams.len());
    // `list_streams` orders ledgers as the tables' indexes do, and the loaders take them in turn.
    let ledgers: Vec<_> = streams
        .into_iter()
        .zip(transfer_sinks.into_iter().zip(entry_sinks))
        .map(|(stream, (transfers, entries))| (stream, Sinks { transfers, entries }))
        .collect();
    let target = Target {
        pool,
        store,
        schema,
        plan: &plan,
        loaded: [transfers.table, entries.table],
    };
    let index_after = |loader: Loader| async {
        let table = loader.table;
        loader.finish().await?;
        plan.build(pool, table).await
    };
    let (folded, transfers_indexed, entries_indexed) = tokio::join!(
        target.fold_all(ledgers, &mut *progress),
        index_after(transfers),
        index_after(entries)
    );
    let first = match folded {
        // A fold that failed stopped the loads too: its error is the one that says why.
        Err(error) if !matches!(error, ProjectionError::LoadStopped(_)) => return Err(error),
        folded => {
            transfers_indexed?;
            entries_indexed?;
            folded?
        }
    };
    // The live projector fills anything appended after this pass from the store, since the
    // swapped-in checkpoints say where the tables stand.
    let rest = catch_up_all(pool, store, schema, &mut |n| progress(first + n)).await?;
    Ok(first + rest)
}

/// Where a build's first pass reads from and writes to.
struct Target<'a> {
    pool: &'a PgPool,
    store: &'a EventStore,
    schema: &'a str,
    plan: &'a IndexPlan,
    /// The tables the loaders fill, indexed once their own load ends.
    loaded: [&'static str; 2],
}

impl Target<'_> {
    /// Folds and writes every ledger, a few at once, then indexes the small tables; returns the
    /// events folded.
    async fn fold_all(
        &self,
        ledgers: Vec<(StreamInfo, Sinks)>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, ProjectionError> {
        let in_memory = Arc::new(Semaphore::new(LEDGERS_IN_MEMORY));
        let mut folded = stream::iter(ledgers)
            .map(|(stream, sinks)| self.fold_one(stream, sinks, Arc::clone(&in_memory)))
            .buffer_unordered(LEDGERS_AT_ONCE);
        let mut writes = Vec::new();
        let mut events = 0;
        while let Some(folded) = folded.next().await {
            let (folded_events, written) = folded?;
            events += folded_events;
            progress(events);
            writes.push(written);
        }
        drop(folded);
        for written in writes {
            written.await??;
        }
        for table in self.plan.tables() {
            if !self.loaded.contains(&table) {
                self.plan.build(self.pool, table).await?;
            }
        }
        Ok(events)
    }

    /// Reads and folds one ledger, then writes it on a task of its own, so that the next ledger is
    /// read meanwhile even while this one waits for the loaders to finish the ledgers before it.
    async fn fold_one(
        &self,
        stream: StreamInfo,
        sinks: Sinks,
        in_memory: Arc<Semaphore>,
    ) -> Result<(u64, JoinHandle<Result<(), ProjectionError>>), ProjectionError> {
        // Never closed, so acquiring only waits.
        let permit = in_memory.acquire_owned().await;
        let started = Instant::now();
        let fold = fold_ledger(self.store, &stream.stream_id, stream.version).await?;
        let events = fold.events();
        tracing::debug!(
            ledger = stream.stream_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ledger read and folded"
        );
        let (pool, schema) = (self.pool.clone(), self.schema.to_owned());
        let write = write_ledger(pool, schema, stream.stream_id, fold, sinks);
        let written = tokio::spawn(async move {
            let written = write.await;
            drop(permit);
            written
        });
        Ok((events, written))
    }
}

/// Rebuilds every read model from the store and swaps it in. `progress` hears events applied so far.
pub async fn rebuild(
    pool: &PgPool,
    store: &EventStore,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, ProjectionError> {
    const NEXT: &str = "read_next";
    let total = build(pool, store, NEXT, progress).await?;
    let mut tx = pool.begin().await?;
    // Waits for the live projector's open transaction, then holds it off for the instant of the swap.
    sqlx::query("lock table read.checkpoints in access exclusive mode")
        .execute(&mut *tx)
        .await?;
    sqlx::query("alter schema read rename to read_old")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("alter schema {NEXT} rename to read"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    sqlx::query("drop schema read_old cascade")
        .execute(pool)
        .await?;
    Ok(total)
}

/// Rows that differ between the live read models and a fresh projection of the store, table by table;
/// empty when the live tables are exact. Used by `tally projections verify` and the tests. The fresh
/// projection is the bulk fold, a separate implementation from the incremental path that keeps the live
/// tables, so each checks the other.
pub async fn differences(
    pool: &PgPool,
    store: &EventStore,
) -> Result<Vec<(String, i64)>, ProjectionError> {
    const FRESH: &str = "read_verify";
    build(pool, store, FRESH, &mut |_| {}).await?;
    let mut out = Vec::new();
    for table in TABLES {
        // Checkpoint timestamps and positions legitimately differ; versions must not.
        let columns = if *table == "checkpoints" {
            "projection, ledger_id, version".to_owned()
        } else {
            "*".to_owned()
        };
        let sql = format!(
            "select count(*) from ((select {columns} from read.{table} except all select {columns} from {FRESH}.{table}) \
             union all (select {columns} from {FRESH}.{table} except all select {columns} from read.{table})) d"
        );
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await?;
        if n > 0 {
            out.push(((*table).to_owned(), n));
        }
    }
    sqlx::query(&format!("drop schema {FRESH} cascade"))
        .execute(pool)
        .await?;
    Ok(out)
}

/// Per ledger: the projection's version and the store's, for `tally projections status`.
pub async fn status(pool: &PgPool) -> Result<Vec<LedgerStatus>, ProjectionError> {
    ledger_status(pool, &EventStore::new(pool.clone())).await
}
