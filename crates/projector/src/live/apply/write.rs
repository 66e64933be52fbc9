//! Writing what a transaction gathered: one statement for every table, the ledgers' versions and the
//! checkpoints, its arrays declared column by column ([`crate::sql::Unnest`]); a large group's new
//! entries and transfers go by binary `COPY` first.

use super::postings::EntryRow;
use super::{AccountKey, Changes, NewTransfer, Totals};
use crate::copy::{CopyRows, HEADER, TRAILER, copy_entries, copy_transfers};
use crate::error::ProjectionError;
use crate::rows::{Volume, side};
use crate::sql::{Params, Table};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

/// Rows a group writes from which on they go by `COPY` (see [`Changes::finish`]). Smaller groups, such
/// as a single transfer's, keep their one round trip: waiting for a turn on a busy core costs them
/// more than the parsing.
const COPY_AT: usize = 1_000;

/// A ledger whose projection moved in a transaction.
pub(crate) struct Moved {
    pub ledger: String,
    pub version: i64,
    /// The position of its last event.
    pub position: i64,
    /// When its last event was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl Changes {
    /// Inserts the buffered statement entries, ahead of a backdated one that shifts them.
    pub(super) async fn write_entries(
        &mut self,
        conn: &mut PgConnection,
    ) -> Result<(), ProjectionError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.entries);
        if entries.len() >= COPY_AT {
            return copy_in(conn, &copy_entries(None), entry_rows(&entries)).await;
        }
        let mut params = Params::default();
        let e = entries_table(&mut params, &entries);
        let sql = format!(
            "insert into entries ({}) select {} from {}",
            e.columns, e.columns, e.from
        );
        sqlx::query_with(&sql, params.into_arguments()?)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes everything gathered and moves the ledgers' versions and checkpoints, all in one
    /// statement: each round trip of a group waits for a turn on cores the writer keeps busy. Tables
    /// with nothing to write get empty arrays, which cost nothing.
    pub(crate) async fn finish(
        self,
        conn: &mut PgConnection,
        projection: &str,
        moved: &[Moved],
    ) -> Result<(), ProjectionError> {
        // A large group (catching up, or behind a bulk load) sends its new rows by binary `COPY`,
        // which spares PostgreSQL building and taking apart arrays and parsing numbers from text.
        let copied = self.entries.len() + self.transfers.len() >= COPY_AT;
        if copied {
            copy_in(conn, &copy_entries(None), entry_rows(&self.entries)).await?;
            copy_in(conn, &copy_transfers(None), transfer_rows(&self.transfers)).await?;
        }
        let (entries, transfers) = match copied {
            true => (&[][..], &[][..]),
            false => (&self.entries[..], &self.transfers[..]),
        };
        let totals: Vec<_> = self.totals.iter().collect();
        let volumes: Vec<_> = self.volumes.iter().collect();
        let mut params = Params::default();
        let projection = params.bind("text", projection);
        let e = entries_table(&mut params, entries);
        let t = transfers_table(&mut params, transfers);
        let a = totals_table(&mut params, &totals);
        let v = volumes_table(&mut params, &volumes);
        let m = moved_table(&mut params, moved);
        // Its parts touch different tables or rows, so sharing one snapshot changes nothing, and an
        // unreferenced data-modifying CTE still runs to completion.
        let sql = format!(
            "with new_entries as (insert into entries ({ec}) select {ec} from {ef}), \
             new_transfers as (insert into transfers ({tc}) select {tc} from {tf}), \
             totals as ( \
                 update accounts a set debits_posted = a.debits_posted + d.debits_posted, \
                                       credits_posted = a.credits_posted + d.credits_posted, \
                                       debits_pending = a.debits_pending + d.debits_pending, \
                                       credits_pending = a.credits_pending + d.credits_pending, \
                                       version = greatest(a.version, d.version), \
                                       last_entry_at = greatest(a.last_entry_at, d.last_entry_at) \
                 from {af} where a.ledger_id = d.ledger_id and a.code = d.code), \
             volumes as ( \
                 insert into daily_volumes ({vc}) select {vc} from {vf} \
                 on conflict (ledger_id, account, day) do update \
                 set debits = daily_volumes.debits + excluded.debits, \
                     credits = daily_volumes.credits + excluded.credits, \
                     entries = daily_volumes.entries + excluded.entries), \
             moved_ledgers as ( \
                 update ledgers l set version = d.version from {mf} where l.ledger_id = d.ledger_id) \
             update checkpoints c set version = d.version, position = d.position, updated_at = now() \
             from {mf} where c.projection = {projection} and c.ledger_id = d.ledger_id",
            ec = e.columns,
            ef = e.from,
            tc = t.columns,
            tf = t.from,
            af = a.from,
            vc = v.columns,
            vf = v.from,
            mf = m.from,
        );
        sqlx::query_with(&sql, params.into_arguments()?)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// New statement entries, as `unnest` columns named after those of `entries`.
fn entries_table(params: &mut Params, rows: &[EntryRow]) -> Table {
    params
        .unnest(rows)
        .column("ledger_id", "text[]", |r| r.entry.ledger.as_str())
        .column("account", "text[]", |r| r.entry.account.as_str())
        .column("effective_at", "timestamptz[]", |r| {
            r.entry.key.effective_at
        })
        .column("version", "int8[]", |r| r.entry.key.version)
        .column("leg", "int4[]", |r| r.entry.key.leg)
        .column("transfer_id", "uuid[]", |r| r.entry.transfer_id)
        .column("side", "text[]", |r| side(r.entry.side))
        .column("amount", "text[]::numeric[]", |r| {
            r.entry.amount.to_string()
        })
        .column("balance_after", "text[]::numeric[]", |r| {
            r.balance_after.to_string()
        })
        .column("recorded_at", "timestamptz[]", |r| r.entry.recorded_at)
        .column("description", "text[]", |r| r.entry.description.as_str())
        .table("t")
}

/// New transfers, as `unnest` columns named after those of `transfers`.
fn transfers_table(params: &mut Params, rows: &[NewTransfer]) -> Table {
    params
        .unnest(rows)
        .column("ledger_id", "text[]", |t| t.ledger.as_str())
        .column("transfer_id", "uuid[]", |t| t.id)
        .column("status", "text[]", |t| t.row.status)
        .column("legs", "jsonb[]", |t| to_json(&t.row.legs))
        .column("posted_amounts", "jsonb[]", |t| {
            t.row.posted.as_ref().map(to_json)
        })
        .column("effective_at", "timestamptz[]", |t| t.row.effective_at)
        .column("recorded_at", "timestamptz[]", |t| t.row.recorded_at)
        .column("expires_at", "timestamptz[]", |t| t.row.expires_at)
        .column("description", "text[]", |t| t.row.description.as_str())
        .column("metadata", "jsonb[]", |t| t.row.metadata.clone())
        .column("reverses", "uuid[]", |t| t.row.reverses)
        .column("corrects", "uuid[]", |t| t.row.corrects)
        .column("reason", "text[]", |t| t.row.reason.as_deref())
        .column("reversed_by", "uuid[]", |t| t.row.reversed_by)
        .column("created_version", "int8[]", |t| t.row.created_version)
        .column("version", "int8[]", |t| t.row.version)
        .table("t")
}

/// Each account's deltas, named after the columns of `accounts` they move.
fn totals_table(params: &mut Params, rows: &[(&AccountKey, &Totals)]) -> Table {
    params
        .unnest(rows)
        .column("ledger_id", "text[]", |(k, _)| k.0.as_str())
        .column("code", "text[]", |(k, _)| k.1.as_str())
        .column("debits_posted", "text[]::numeric[]", |(_, t)| {
            t.balances.debits_posted.to_string()
        })
        .column("credits_posted", "text[]::numeric[]", |(_, t)| {
            t.balances.credits_posted.to_string()
        })
        .column("debits_pending", "text[]::numeric[]", |(_, t)| {
            t.balances.debits_pending.to_string()
        })
        .column("credits_pending", "text[]::numeric[]", |(_, t)| {
            t.balances.credits_pending.to_string()
        })
        .column("version", "int8[]", |(_, t)| t.version)
        .column("last_entry_at", "timestamptz[]", |(_, t)| t.last_entry_at)
        .table("d")
}

/// Each account's day's movements, named after the columns of `daily_volumes`.
fn volumes_table(params: &mut Params, rows: &[(&(String, String, NaiveDate), &Volume)]) -> Table {
    params
        .unnest(rows)
        .column("ledger_id", "text[]", |(k, _)| k.0.as_str())
        .column("account", "text[]", |(k, _)| k.1.as_str())
        .column("day", "date[]", |(k, _)| k.2)
        .column("currency", "text[]", |(_, v)| v.currency.as_str())
        .column("debits", "text[]::numeric[]", |(_, v)| v.debits.to_string())
        .column("credits", "text[]::numeric[]", |(_, v)| {
            v.credits.to_string()
        })
        .column("entries", "int8[]", |(_, v)| v.entries)
        .table("t")
}

/// The ledgers' new versions and checkpoints.
fn moved_table(params: &mut Params, rows: &[Moved]) -> Table {
    params
        .unnest(rows)
        .column("ledger_id", "text[]", |m| m.ledger.as_str())
        .column("version", "int8[]", |m| m.version)
        .column("position", "int8[]", |m| m.position)
        .table("d")
}

/// What the incremental path stores for a value that does not serialise: JSON `null`.
fn to_json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Sends `rows` (binary `COPY` rows, without header and trailer) with `statement`.
async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    rows: Vec<u8>,
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(HEADER).await?;
    copy.send(rows).await?;
    copy.send(TRAILER).await?;
    copy.finish().await?;
    Ok(())
}

/// `entries` in the field order of [`copy_entries`].
fn entry_rows(entries: &[EntryRow]) -> Vec<u8> {
    let mut rows = CopyRows::new();
    for EntryRow {
        entry: e,
        balance_after,
    } in entries
    {
        rows.text(&e.ledger)
            .text(&e.account)
            .time(e.key.effective_at)
            .int8(e.key.version)
            .int4(e.key.leg)
            .uuid(e.transfer_id)
            .text(side(e.side))
            .numeric(e.amount)
            .numeric(*balance_after)
            .time(e.recorded_at)
            .text(&e.description);
        rows.close_row();
    }
    rows.into_bytes()
}

/// `transfers` in the field order of [`copy_transfers`].
fn transfer_rows(transfers: &[NewTransfer]) -> Vec<u8> {
    let mut rows = CopyRows::new();
    for t in transfers {
        t.row.copy_into(&mut rows, &t.ledger, t.id);
    }
    rows.into_bytes()
}
