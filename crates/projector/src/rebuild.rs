//! Blue/green rebuild: build fresh read models from the store in a scratch schema, catch up, then swap
//! schemas in one short transaction while readers keep reading the old tables until the swap.

use crate::bulk::project_ledger;
use crate::error::ProjectionError;
use crate::project::{PROJECTION, catch_up_all};
use futures_util::{StreamExt, stream};
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

/// Ledgers folded and written at once: one folds in Rust while PostgreSQL writes the other's rows.
const LEDGERS_AT_ONCE: usize = 2;
/// Tables indexed at once after the load: one sort per core.
const TABLES_AT_ONCE: usize = 2;

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

/// A table, one of its indexes and the index's definition; the constraint it backs, if any, and that
/// constraint's definition.
type IndexRow = (String, String, String, Option<String>, Option<String>);

/// Gives the tables of `schema` the primary keys, unique constraints and indexes of `read`, under the
/// same names, so that a swapped-in schema looks exactly like the one the migrations made.
pub async fn create_indexes(pool: &PgPool, schema: &str) -> Result<(), ProjectionError> {
    let indexes: Vec<IndexRow> = sqlx::query_as(
        "select t.relname::text, i.relname::text, pg_get_indexdef(i.oid), c.conname::text, \
                pg_get_constraintdef(c.oid) \
         from pg_index x \
         join pg_class i on i.oid = x.indexrelid \
         join pg_class t on t.oid = x.indrelid \
         join pg_namespace n on n.oid = t.relnamespace \
         left join pg_constraint c on c.conindid = i.oid and c.conrelid = t.oid \
         where n.nspname = 'read' order by t.relname, i.relname",
    )
    .fetch_all(pool)
    .await?;
    let mut by_table: Vec<(String, Vec<String>)> = Vec::new();
    for (table, index, definition, constraint, constraint_definition) in indexes {
        let sql = match (constraint, constraint_definition) {
            (Some(name), Some(definition)) => {
                format!("alter table {schema}.{table} add constraint {name} {definition}")
            }
            _ => {
                let on = format!(" ON read.{table} ");
                if !definition.contains(&on) {
                    return Err(ProjectionError::Inconsistent {
                        ledger: String::new(),
                        reason: format!("cannot copy index {index}: {definition}"),
                    });
                }
                definition.replacen(&on, &format!(" ON {schema}.{table} "), 1)
            }
        };
        match by_table.last_mut() {
            Some((last, statements)) if *last == table => statements.push(sql),
            _ => by_table.push((table, vec![sql])),
        }
    }
    // Index builds are sorts bound by one core each: tables are indexed side by side, each on a
    // connection of its own. The scratch schema is invisible until the swap, so nothing needs one
    // transaction across tables.
    let mut built = stream::iter(by_table)
        .map(|(_, statements)| async move {
            let mut tx = pool.begin().await?;
            for sql in statements {
                sqlx::query(&sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, ProjectionError>(())
        })
        .buffer_unordered(TABLES_AT_ONCE);
    while let Some(done) = built.next().await {
        done?;
    }
    Ok(())
}

/// Builds every read model from the store into the fresh schema `schema`: each ledger folded in
/// memory and written in bulk, then the indexes, then a second pass for what was appended meanwhile.
async fn build(
    pool: &PgPool,
    store: &EventStore,
    schema: &str,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, ProjectionError> {
    create_scratch(pool, schema).await?;
    let streams = store.list_streams().await?;
    let mut folded = stream::iter(streams)
        .map(|stream| async move { project_ledger(pool, store, schema, &stream.stream_id).await })
        .buffer_unordered(LEDGERS_AT_ONCE);
    let mut first = 0;
    while let Some(applied) = folded.next().await {
        first += applied?;
        progress(first);
    }
    create_indexes(pool, schema).await?;
    // The live projector fills anything appended after this pass from the store, since the
    // swapped-in checkpoints say where the tables stand.
    let rest = catch_up_all(pool, store, schema, &mut |n| progress(first + n)).await?;
    Ok(first + rest)
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
