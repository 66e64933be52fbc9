//! Blue/green rebuild: build fresh read models from the store in a scratch schema, catch up, then swap
//! schemas in one short transaction while readers keep reading the old tables until the swap.

use crate::bulk::project_ledger;
use crate::error::ProjectionError;
use crate::project::{PROJECTION, catch_up_all};
use sqlx::PgPool;
use tally_eventstore::EventStore;

/// The tables of the `read` schema, in creation order.
pub const TABLES: &[&str] = &[
    "ledgers",
    "accounts",
    "transfers",
    "entries",
    "daily_volumes",
    "checkpoints",
];

/// Creates `schema` afresh with empty copies (columns, constraints, indexes) of the `read` tables.
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
            "create table {schema}.{table} (like read.{table} including all)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rebuilds every read model from the store and swaps it in. `progress` hears events applied so far.
pub async fn rebuild(
    pool: &PgPool,
    store: &EventStore,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, ProjectionError> {
    const NEXT: &str = "read_next";
    create_scratch(pool, NEXT).await?;
    let mut first = 0;
    for stream in store.list_streams().await? {
        first += project_ledger(pool, store, NEXT, &stream.stream_id).await?;
        progress(first);
    }
    // A second pass picks up what was appended during the first; the live projector fills anything
    // appended after it from the store, since the swapped-in checkpoints say where the tables stand.
    let total = first + catch_up_all(pool, store, NEXT, &mut |n| progress(first + n)).await?;
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
    create_scratch(pool, FRESH).await?;
    for stream in store.list_streams().await? {
        project_ledger(pool, store, FRESH, &stream.stream_id).await?;
    }
    catch_up_all(pool, store, FRESH, &mut |_| {}).await?;
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
pub async fn status(pool: &PgPool) -> Result<Vec<(String, i64, i64)>, ProjectionError> {
    let rows = sqlx::query_as(
        "select s.stream_id, coalesce(c.version, 0), s.version from streams s \
         left join read.checkpoints c on c.ledger_id = s.stream_id and c.projection = $1 order by s.stream_id",
    )
    .bind(PROJECTION)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
