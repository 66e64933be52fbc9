//! Planner statistics for read tables that have none yet.
//!
//! Tables that are new (a fresh deployment, or the ones a rebuild has just swapped in) have rows but no
//! statistics until autovacuum analyses them, and autovacuum looks at a database only once a minute.
//! Meanwhile the planner estimates one row for any account, so an ordered `limit 1` over an account's
//! entries may be planned as a scan and sort of its whole statement (through `entries_by_version`), and
//! a prepared statement keeps that plan. Analysing such tables as soon as they hold rows gives the query
//! API's lookups their index plans within seconds; ANALYZE invalidates the plans cached on them.

use crate::error::ProjectionError;
use crate::sql::quote_ident;
use sqlx::PgPool;

/// Analyses every table of `schema` that holds rows but has no statistics, and returns their names.
/// Tables with statistics are left to autovacuum.
pub async fn analyze_new_tables(
    pool: &PgPool,
    schema: &str,
) -> Result<Vec<String>, ProjectionError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relkind = 'r' \
           and not exists (select 1 from pg_stats s where s.schemaname = n.nspname and s.tablename = c.relname) \
         order by c.relname",
    )
    .bind(schema)
    .fetch_all(pool)
    .await?;
    let mut analysed = Vec::new();
    for table in tables {
        let name = format!("{}.{}", quote_ident(schema), quote_ident(&table));
        let has_rows: bool = sqlx::query_scalar(&format!("select exists (select 1 from {name})"))
            .fetch_one(pool)
            .await?;
        if has_rows {
            sqlx::query(&format!("analyze {name}"))
                .execute(pool)
                .await?;
            analysed.push(table);
        }
    }
    Ok(analysed)
}
