//! Writing a folded ledger into a scratch schema: transfers and entries encoded for the shared
//! `COPY` loads (`load.rs`), the small tables with a few set-based statements.

use super::fold::{AccountRow, EntryRow, Fold, FoldedTransfer};
use super::load::Sink;
use crate::checkpoints::PROJECTION;
use crate::copy::CopyRows;
use crate::error::ProjectionError;
use crate::rows::{Volume, side};
use crate::sql::Params;
use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use tally_domain::Side;

/// Rows per insert statement: large enough to amortise the round trip, small enough for bind limits.
const CHUNK: usize = 20_000;

/// Where one ledger's transfers and entries go: each table is loaded by one `COPY` for every ledger.
pub(crate) struct Sinks {
    pub(crate) transfers: Sink,
    pub(crate) entries: Sink,
}

/// Writes a folded ledger into the empty tables of `schema`: the small tables directly, transfers and
/// entries through `sinks`. Owns its arguments so that it can run on a task
/// of its own while the next ledgers are read.
pub(crate) async fn write_ledger(
    pool: PgPool,
    schema: String,
    ledger: String,
    mut fold: Fold,
    sinks: Sinks,
) -> Result<(), ProjectionError> {
    if fold.version == 0 {
        sinks.transfers.end().await?;
        sinks.entries.end().await?;
        return Ok(());
    }
    let transfers = std::mem::take(&mut fold.transfers);
    let entries = std::mem::take(&mut fold.entries);
    let normals: HashMap<String, Side> = fold
        .accounts
        .iter()
        .map(|(code, a)| (code.clone(), a.normal))
        .collect();
    // Each on a task of its own, so that both encoders and the small tables' statements run at once.
    let encode_transfers = tokio::spawn(send_transfers(ledger.clone(), transfers, sinks.transfers));
    let encode_entries = tokio::spawn(send_entries(
        ledger.clone(),
        entries,
        normals,
        sinks.entries,
    ));
    let small = write_small(&pool, &schema, &ledger, fold).await;
    encode_transfers.await??;
    encode_entries.await??;
    small?;
    Ok(())
}

async fn send_transfers(
    ledger: String,
    transfers: Vec<FoldedTransfer>,
    sink: Sink,
) -> Result<(), ProjectionError> {
    // The fold keeps them in creation order, the order of the index listings page by (and close to
    // that of the one by last change), so that its build finds them sorted.
    let mut rows = CopyRows::new();
    for t in &transfers {
        t.row.copy_into(&mut rows, &ledger, t.id);
        rows.end_row(&sink).await?;
    }
    rows.flush(&sink).await?;
    sink.end().await
}

async fn send_entries(
    ledger: String,
    mut entries: Vec<EntryRow>,
    normals: HashMap<String, Side>,
    sink: Sink,
) -> Result<(), ProjectionError> {
    // Running balances in business-time order, per account, exactly as the incremental path keeps them;
    // also the primary key's order, so that its build finds the rows sorted.
    entries.sort_unstable_by(|a, b| {
        (&a.account, a.effective_at, a.version, a.leg).cmp(&(
            &b.account,
            b.effective_at,
            b.version,
            b.leg,
        ))
    });
    let mut rows = CopyRows::new();
    let mut running = 0i128;
    for (i, e) in entries.iter().enumerate() {
        if i == 0 || entries[i - 1].account != e.account {
            running = 0;
        }
        let normal = normals.get(&*e.account).copied().unwrap_or(Side::Debit);
        running += if e.side == normal {
            e.amount
        } else {
            -e.amount
        };
        rows.text(&ledger)
            .text(&e.account)
            .time(e.effective_at)
            .int8(e.version)
            .int4(e.leg)
            .uuid(e.transfer_id)
            .text(side(e.side))
            .numeric(e.amount)
            .numeric(running)
            .time(e.recorded_at)
            .text(&e.description);
        rows.end_row(&sink).await?;
    }
    rows.flush(&sink).await?;
    sink.end().await
}

/// The ledger's row, its accounts, daily volumes and checkpoint, in one transaction.
async fn write_small(
    pool: &PgPool,
    schema: &str,
    ledger: &str,
    fold: Fold,
) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("set local search_path to {schema}, public"))
        .execute(&mut *tx)
        .await?;
    if let Some(created_at) = fold.created_at {
        sqlx::query("insert into ledgers (ledger_id, name, created_at, closed_through, version) values ($1, $2, $3, $4, $5)")
            .bind(ledger)
            .bind(&fold.name)
            .bind(created_at)
            .bind(fold.closed_through)
            .bind(fold.version)
            .execute(&mut *tx)
            .await?;
    }
    let accounts: Vec<&AccountRow> = fold.accounts.values().collect();
    for chunk in accounts.chunks(CHUNK) {
        insert_accounts(&mut tx, ledger, chunk).await?;
    }
    let volumes: Vec<_> = fold.volumes.iter().collect();
    for chunk in volumes.chunks(CHUNK) {
        insert_volumes(&mut tx, ledger, chunk).await?;
    }
    sqlx::query("insert into checkpoints (projection, ledger_id, version, position) values ($1, $2, $3, $4)")
        .bind(PROJECTION)
        .bind(ledger)
        .bind(fold.version)
        .bind(fold.position)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_accounts(
    conn: &mut PgConnection,
    ledger: &str,
    rows: &[&AccountRow],
) -> Result<(), ProjectionError> {
    let mut params = Params::default();
    let ledger = params.bind("text", ledger);
    let a = params
        .unnest(rows)
        .column("code", "text[]", |a| &*a.code)
        .column("account_type", "text[]", |a| a.account_type.as_str())
        .column("normal_side", "text[]", |a| side(a.normal))
        .column("currency", "text[]", |a| a.currency.as_str())
        .column("scale", "int2[]", |a| a.scale)
        .column("status", "text[]", |a| a.status)
        .column("floor", "text[]::numeric[]", |a| {
            a.floor.map(|f| f.to_string())
        })
        .column("ceiling", "text[]::numeric[]", |a| {
            a.ceiling.map(|c| c.to_string())
        })
        .column("metadata", "jsonb[]", |a| a.metadata.clone())
        .column("debits_posted", "text[]::numeric[]", |a| {
            a.balances.debits_posted.to_string()
        })
        .column("credits_posted", "text[]::numeric[]", |a| {
            a.balances.credits_posted.to_string()
        })
        .column("debits_pending", "text[]::numeric[]", |a| {
            a.balances.debits_pending.to_string()
        })
        .column("credits_pending", "text[]::numeric[]", |a| {
            a.balances.credits_pending.to_string()
        })
        .column("version", "int8[]", |a| a.version)
        .column("last_entry_at", "timestamptz[]", |a| a.last_entry_at)
        .table("t");
    let sql = format!(
        "insert into accounts (ledger_id, {}) select {ledger}, {} from {}",
        a.columns, a.columns, a.from
    );
    sqlx::query_with(&sql, params.into_arguments()?)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_volumes(
    conn: &mut PgConnection,
    ledger: &str,
    rows: &[(&(String, NaiveDate), &Volume)],
) -> Result<(), ProjectionError> {
    let mut params = Params::default();
    let ledger = params.bind("text", ledger);
    let v = params
        .unnest(rows)
        .column("account", "text[]", |(k, _)| k.0.as_str())
        .column("day", "date[]", |(k, _)| k.1)
        .column("currency", "text[]", |(_, v)| v.currency.as_str())
        .column("debits", "text[]::numeric[]", |(_, v)| v.debits.to_string())
        .column("credits", "text[]::numeric[]", |(_, v)| {
            v.credits.to_string()
        })
        .column("entries", "int8[]", |(_, v)| v.entries)
        .table("t");
    let sql = format!(
        "insert into daily_volumes (ledger_id, {}) select {ledger}, {} from {}",
        v.columns, v.columns, v.from
    );
    sqlx::query_with(&sql, params.into_arguments()?)
        .execute(conn)
        .await?;
    Ok(())
}
