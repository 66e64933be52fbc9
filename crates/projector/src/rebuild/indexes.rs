//! The indexes of a scratch schema, copied from `read` under the same names and built once the rows are
//! in: one sort per index instead of maintaining every index row by row.

use crate::error::ProjectionError;
use futures_util::{StreamExt, stream};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Index builds at once over the whole rebuild: each is a sort bound by one core, and a table that is
/// still loading keeps a core busy too.
const BUILDS_AT_ONCE: usize = 3;

/// What one table needs once loaded: its indexes, then the constraints that adopt some of them.
#[derive(Default)]
pub(crate) struct TableIndexes {
    builds: Vec<String>,
    constraints: Vec<String>,
}

/// Every table's indexes, looked up once in the catalog of `read`.
pub(crate) struct IndexPlan {
    tables: BTreeMap<String, TableIndexes>,
    slots: Arc<Semaphore>,
}

/// One index of `read` as the catalog describes it, with the constraint it backs, if any.
#[derive(sqlx::FromRow)]
struct IndexRow {
    table: String,
    index: String,
    definition: String,
    constraint: Option<String>,
    /// `p` for a primary key, `u` for a unique constraint, …
    kind: Option<String>,
    constraint_definition: Option<String>,
}

impl IndexPlan {
    /// The statements that give the tables of `schema` the primary keys, unique constraints and indexes
    /// of `read`, under the same names, so that a swapped-in schema looks exactly like the one the
    /// migrations made.
    pub(crate) async fn of_read(pool: &PgPool, schema: &str) -> Result<Self, ProjectionError> {
        let indexes: Vec<IndexRow> = sqlx::query_as(
            "select t.relname::text as table, i.relname::text as index, \
                    pg_get_indexdef(i.oid) as definition, c.conname::text as constraint, \
                    c.contype::text as kind, pg_get_constraintdef(c.oid) as constraint_definition \
             from pg_index x \
             join pg_class i on i.oid = x.indexrelid \
             join pg_class t on t.oid = x.indrelid \
             join pg_namespace n on n.oid = t.relnamespace \
             left join pg_constraint c on c.conindid = i.oid and c.conrelid = t.oid \
             where n.nspname = 'read' order by t.relname, i.relname",
        )
        .fetch_all(pool)
        .await?;
        let mut tables: BTreeMap<String, TableIndexes> = BTreeMap::new();
        for IndexRow {
            table,
            index,
            definition,
            constraint,
            kind,
            constraint_definition,
        } in indexes
        {
            let on = format!(" ON read.{table} ");
            let build = definition.replacen(&on, &format!(" ON {schema}.{table} "), 1);
            let plan = tables.entry(table.clone()).or_default();
            match (constraint, kind.as_deref(), constraint_definition) {
                // Primary keys and unique constraints adopt an index built like any other, so that
                // they too build side by side with the table's other indexes (adding the constraint
                // directly would lock the table against them).
                (Some(name), Some(kind @ ("p" | "u")), _) if definition.contains(&on) => {
                    plan.builds.push(build);
                    let kind = if kind == "p" { "primary key" } else { "unique" };
                    plan.constraints.push(format!(
                        "alter table {schema}.{table} add constraint {name} {kind} using index {index}"
                    ));
                }
                (Some(name), _, Some(constraint_definition)) => plan.constraints.push(format!(
                    "alter table {schema}.{table} add constraint {name} {constraint_definition}"
                )),
                _ if definition.contains(&on) => plan.builds.push(build),
                _ => {
                    return Err(ProjectionError::Inconsistent {
                        ledger: String::new(),
                        reason: format!("cannot copy index {index}: {definition}"),
                    });
                }
            }
        }
        Ok(Self {
            tables,
            slots: Arc::new(Semaphore::new(BUILDS_AT_ONCE)),
        })
    }

    /// Builds `table`'s indexes, each on a connection of its own (the scratch schema is invisible
    /// until the swap, so nothing needs one transaction), then adds its constraints.
    pub(crate) async fn build(&self, pool: &PgPool, table: &str) -> Result<(), ProjectionError> {
        let Some(plan) = self.tables.get(table) else {
            return Ok(());
        };
        let mut built = stream::iter(&plan.builds)
            .map(|sql| async move {
                // Never closed, so acquiring only waits.
                let _slot = self.slots.acquire().await;
                let started = std::time::Instant::now();
                let mut tx = pool.begin().await?;
                // A build joining another's scan of the same table midway would see the rows
                // rotated, no longer in the order they were loaded in, and sort them all.
                sqlx::query("set local synchronize_seqscans = off")
                    .execute(&mut *tx)
                    .await?;
                // These builds already run side by side, one per core: parallel workers would only
                // oversubscribe the cores, and split the sort memory so that each spills to disk.
                sqlx::query("set local max_parallel_maintenance_workers = 0")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql).execute(&mut *tx).await?;
                tx.commit().await?;
                tracing::debug!(
                    sql,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "index built"
                );
                Ok::<_, ProjectionError>(())
            })
            .buffer_unordered(BUILDS_AT_ONCE);
        while let Some(done) = built.next().await {
            done?;
        }
        if !plan.constraints.is_empty() {
            let mut tx = pool.begin().await?;
            for sql in &plan.constraints {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// The tables that have indexes.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}
