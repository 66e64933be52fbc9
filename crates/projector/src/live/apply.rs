//! How events change the read models, set-based: the events of one transaction are folded into new rows
//! and deltas in memory and written with one statement per table when the transaction ends, because one
//! round trip per event and leg was what kept the live projector slower than the writer. Tables are
//! those of the current `search_path` (`read`, or the fresh schema of a rebuild).

use crate::copy::{CopyRows, HEADER, TRAILER, copy_entries, copy_transfers};
use crate::error::ProjectionError;
use crate::rows::TransferRow;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use std::collections::HashMap;
use tally_domain::{Event, LegSpec, Side, TransferSpec};
use uuid::Uuid;

/// Where an event sits in its stream, and when it was recorded.
pub(crate) struct At {
    pub version: i64,
    pub recorded_at: DateTime<Utc>,
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Debit => "debit",
        Side::Credit => "credit",
    }
}

/// The serde name of a unit enum variant (`asset`, `debit`).
fn json_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// An entry's place in its account's statement: business time, then the version and leg that booked it.
type Key = (DateTime<Utc>, i64, i32);

/// What posting to an account needs to know: its normal side, and the last entry of its statement
/// (already written or still buffered) with the running balance after it.
struct Statement {
    normal: Side,
    tail: Option<(Key, i128)>,
}

/// A transfer created in this transaction: its ledger, id and row, still changed in memory.
struct NewTransfer {
    ledger: String,
    id: Uuid,
    row: TransferRow,
}

struct EntryRow {
    ledger: String,
    account: String,
    key: Key,
    transfer_id: Uuid,
    description: String,
    side: Side,
    amount: i128,
    balance_after: i128,
    recorded_at: DateTime<Utc>,
}

/// The transfer a leg is booked for, as its statement entries show it. The description is kept on
/// every entry so that a statement page reads one index range instead of a transfer lookup per row.
struct Booking<'a> {
    transfer_id: Uuid,
    description: &'a str,
    effective_at: DateTime<Utc>,
}

/// A ledger whose projection moved in a transaction: ledger, new version, position of its last event,
/// and when that event was recorded.
pub(crate) type Moved = (String, i64, i64, DateTime<Utc>);

/// A day's posted movements on an account: currency, debits, credits, number of entries.
type Volume = (String, i128, i128, i64);

/// How a transaction moves one account's row.
struct Totals {
    /// Debits posted, credits posted, debits pending, credits pending.
    amounts: [i128; 4],
    /// The last version that changed the account.
    version: i64,
    /// Business time of the latest entry booked, if any (`read.accounts.last_entry_at`).
    last_entry_at: Option<DateTime<Utc>>,
}

/// Everything a transaction will write, gathered per ledger and account. Transfers created in the
/// transaction are changed in memory; only older ones are updated in place, at once.
#[derive(Default)]
pub(crate) struct Changes {
    statements: HashMap<(String, String), Statement>,
    totals: HashMap<(String, String), Totals>,
    transfers: Vec<NewTransfer>,
    new_transfers: HashMap<(String, Uuid), usize>,
    entries: Vec<EntryRow>,
    volumes: HashMap<(String, String, NaiveDate), Volume>,
}

impl Changes {
    /// Loads the statement state of `codes` in one query, so that a batch's postings cost no round trip
    /// per account. Accounts not projected yet are left for [`Changes::statement`] to find later (they
    /// may be opened by an earlier event of the same batch).
    pub(crate) async fn prefetch(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        codes: &[String],
    ) -> Result<(), ProjectionError> {
        let missing: Vec<&str> = codes
            .iter()
            .filter(|c| {
                !self
                    .statements
                    .contains_key(&(ledger.to_owned(), (*c).clone()))
            })
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        // The running balance after an account's last entry is its net posted total, which every
        // entry moves (a backdated one included), so the account row alone says where its statement ends.
        let rows: Vec<StatementRow> = sqlx::query_as(
            "select code, normal_side, last_entry_at, \
                    (case normal_side when 'debit' then debits_posted - credits_posted \
                                      else credits_posted - debits_posted end)::text \
             from accounts where ledger_id = $1 and code = any($2::text[])",
        )
        .bind(ledger)
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let code = row.0.clone();
            let statement = statement_from_row(ledger, row)?;
            self.statements.insert((ledger.to_owned(), code), statement);
        }
        Ok(())
    }

    async fn statement(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        code: &str,
    ) -> Result<&mut Statement, ProjectionError> {
        let key = (ledger.to_owned(), code.to_owned());
        if !self.statements.contains_key(&key) {
            self.prefetch(conn, ledger, &[code.to_owned()]).await?;
        }
        self.statements
            .get_mut(&key)
            .ok_or_else(|| ProjectionError::Inconsistent {
                ledger: ledger.to_owned(),
                reason: format!("account {code} is not projected"),
            })
    }

    pub(crate) async fn apply(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        at: &At,
        event: Event,
    ) -> Result<(), ProjectionError> {
        let v = at.version;
        match event {
            Event::LedgerCreated { name, created_at } => {
                sqlx::query(
                    "insert into ledgers (ledger_id, name, created_at, version) values ($1, $2, $3, $4)",
                )
                .bind(ledger)
                .bind(name)
                .bind(created_at)
                .bind(v)
                .execute(&mut *conn)
                .await?;
            }
            Event::AccountOpened {
                code,
                account_type,
                currency,
                limits,
                metadata,
            } => {
                sqlx::query(
                    "insert into accounts (ledger_id, code, account_type, normal_side, currency, scale, status, \
                     floor, ceiling, metadata, version) \
                     values ($1, $2, $3, $4, $5, $6, 'open', $7::numeric, $8::numeric, $9, $10)",
                )
                .bind(ledger)
                .bind(code.as_str())
                .bind(json_str(&account_type))
                .bind(side(account_type.normal_side()))
                .bind(currency.code.as_str())
                .bind(i16::from(currency.scale))
                .bind(limits.floor.map(|f| f.to_string()))
                .bind(limits.ceiling.map(|c| c.to_string()))
                .bind(serde_json::to_value(&metadata).unwrap_or_default())
                .bind(v)
                .execute(&mut *conn)
                .await?;
                self.statements.insert(
                    (ledger.to_owned(), code.as_str().to_owned()),
                    Statement {
                        normal: account_type.normal_side(),
                        tail: None,
                    },
                );
            }
            Event::AccountFrozen { code } => {
                set_status(conn, ledger, code.as_str(), "frozen", v).await?
            }
            Event::AccountUnfrozen { code } => {
                set_status(conn, ledger, code.as_str(), "open", v).await?
            }
            Event::AccountClosed { code } => {
                set_status(conn, ledger, code.as_str(), "closed", v).await?
            }
            Event::AccountLimitsChanged { code, limits } => {
                sqlx::query(
                    "update accounts set floor = $3::numeric, ceiling = $4::numeric, version = $5 \
                     where ledger_id = $1 and code = $2",
                )
                .bind(ledger)
                .bind(code.as_str())
                .bind(limits.floor.map(|f| f.to_string()))
                .bind(limits.ceiling.map(|c| c.to_string()))
                .bind(v)
                .execute(&mut *conn)
                .await?;
            }
            Event::AccountMetadataChanged { code, metadata } => {
                sqlx::query(
                    "update accounts set metadata = $3, version = $4 where ledger_id = $1 and code = $2",
                )
                .bind(ledger)
                .bind(code.as_str())
                .bind(serde_json::to_value(&metadata).unwrap_or_default())
                .bind(v)
                .execute(&mut *conn)
                .await?;
            }
            Event::TransferPosted {
                transfer,
                recorded_at,
                correction,
                ..
            } => {
                let effective_at = transfer.effective_at.unwrap_or(recorded_at);
                let booking = Booking {
                    transfer_id: transfer.id.0,
                    description: &transfer.description,
                    effective_at,
                };
                for (i, leg) in transfer.legs.iter().enumerate() {
                    self.post(conn, ledger, at, &booking, i, leg, leg.amount.get())
                        .await?;
                }
                let mut new = transfer_row(ledger, at, transfer, "posted", effective_at, None);
                if let Some(c) = correction {
                    new.row.corrects = Some(c.of.0);
                    new.row.reason = Some(c.reason.as_str().to_owned());
                }
                self.insert_transfer(new);
            }
            Event::TransferReserved {
                transfer,
                recorded_at,
                expires_at,
                ..
            } => {
                let effective_at = transfer.effective_at.unwrap_or(recorded_at);
                for leg in &transfer.legs {
                    self.pending(ledger, leg, leg.amount.get(), v);
                }
                let row = transfer_row(
                    ledger,
                    at,
                    transfer,
                    "pending",
                    effective_at,
                    Some(expires_at),
                );
                self.insert_transfer(row);
            }
            Event::PendingTransferPosted {
                id,
                amounts,
                effective_at,
                ..
            } => {
                let (legs, description) = self.transfer_legs(conn, ledger, id.0).await?;
                let booking = Booking {
                    transfer_id: id.0,
                    description: &description,
                    effective_at,
                };
                for (i, (leg, amount)) in legs.iter().zip(&amounts).enumerate() {
                    self.pending(ledger, leg, -leg.amount.get(), v);
                    self.post(conn, ledger, at, &booking, i, leg, amount.get())
                        .await?;
                }
                if let Some(t) = self.new_transfer(ledger, id.0) {
                    t.status = "posted";
                    t.posted = Some(amounts);
                    t.effective_at = effective_at;
                    t.version = v;
                } else {
                    sqlx::query(
                        "update transfers set status = 'posted', posted_amounts = $3, effective_at = $4, \
                         version = $5 where ledger_id = $1 and transfer_id = $2",
                    )
                    .bind(ledger)
                    .bind(id.0)
                    .bind(serde_json::to_value(&amounts).unwrap_or_default())
                    .bind(effective_at)
                    .bind(v)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Event::PendingTransferVoided { id, .. } => {
                self.release(conn, ledger, v, id.0, "voided").await?
            }
            Event::PendingTransferExpired { id, .. } => {
                self.release(conn, ledger, v, id.0, "expired").await?
            }
            Event::TransferReversed {
                reversal,
                legs,
                effective_at,
                ..
            } => {
                let id = reversal.id.0;
                // A reversal has no description of its own; its transfer row says what it reverses.
                let booking = Booking {
                    transfer_id: id,
                    description: "",
                    effective_at,
                };
                for (i, leg) in legs.iter().enumerate() {
                    self.post(conn, ledger, at, &booking, i, leg, leg.amount.get())
                        .await?;
                }
                let spec = TransferSpec {
                    id: reversal.id,
                    legs,
                    effective_at: Some(effective_at),
                    description: String::new(),
                    metadata: Default::default(),
                    pending: None,
                };
                let mut new = transfer_row(ledger, at, spec, "posted", effective_at, None);
                new.row.reverses = Some(reversal.original.0);
                new.row.reason = Some(reversal.reason.as_str().to_owned());
                self.insert_transfer(new);
                let original = reversal.original.0;
                if let Some(t) = self.new_transfer(ledger, original) {
                    t.status = "reversed";
                    t.reversed_by = Some(id);
                    t.version = v;
                } else {
                    sqlx::query(
                        "update transfers set status = 'reversed', reversed_by = $3, version = $4 \
                         where ledger_id = $1 and transfer_id = $2",
                    )
                    .bind(ledger)
                    .bind(original)
                    .bind(id)
                    .bind(v)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Event::PeriodClosed { through, .. } => {
                sqlx::query("update ledgers set closed_through = $2 where ledger_id = $1")
                    .bind(ledger)
                    .bind(through)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    fn insert_transfer(&mut self, new: NewTransfer) {
        self.new_transfers
            .insert((new.ledger.clone(), new.id), self.transfers.len());
        self.transfers.push(new);
    }

    fn new_transfer(&mut self, ledger: &str, id: Uuid) -> Option<&mut TransferRow> {
        let i = *self.new_transfers.get(&(ledger.to_owned(), id))?;
        self.transfers.get_mut(i).map(|t| &mut t.row)
    }

    /// A transfer's legs and description, from this transaction's new rows or the table.
    async fn transfer_legs(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        id: Uuid,
    ) -> Result<(Vec<LegSpec>, String), ProjectionError> {
        if let Some(t) = self.new_transfer(ledger, id) {
            return Ok((t.legs.clone(), t.description.clone()));
        }
        let row: Option<(Value, String)> = sqlx::query_as(
            "select legs, description from transfers where ledger_id = $1 and transfer_id = $2",
        )
        .bind(ledger)
        .bind(id)
        .fetch_optional(conn)
        .await?;
        let inconsistent = |reason: String| ProjectionError::Inconsistent {
            ledger: ledger.to_owned(),
            reason,
        };
        let (legs, description) =
            row.ok_or_else(|| inconsistent(format!("transfer {id} is not projected")))?;
        let legs =
            serde_json::from_value(legs).map_err(|e| inconsistent(format!("legs of {id}: {e}")))?;
        Ok((legs, description))
    }

    async fn release(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        v: i64,
        id: Uuid,
        status: &'static str,
    ) -> Result<(), ProjectionError> {
        for leg in self.transfer_legs(conn, ledger, id).await?.0 {
            self.pending(ledger, &leg, -leg.amount.get(), v);
        }
        if let Some(t) = self.new_transfer(ledger, id) {
            t.status = status;
            t.version = v;
            return Ok(());
        }
        sqlx::query(
            "update transfers set status = $3, version = $4 where ledger_id = $1 and transfer_id = $2",
        )
        .bind(ledger)
        .bind(id)
        .bind(status)
        .bind(v)
        .execute(conn)
        .await?;
        Ok(())
    }

    fn total(&mut self, ledger: &str, account: &str, v: i64) -> &mut Totals {
        let entry = self
            .totals
            .entry((ledger.to_owned(), account.to_owned()))
            .or_insert(Totals {
                amounts: [0; 4],
                version: v,
                last_entry_at: None,
            });
        entry.version = entry.version.max(v);
        entry
    }

    fn pending(&mut self, ledger: &str, leg: &LegSpec, delta: i128, v: i64) {
        let i = if leg.side == Side::Debit { 2 } else { 3 };
        self.total(ledger, leg.account.as_str(), v).amounts[i] += delta;
    }

    /// Books one posted leg: its statement entry, the account's totals and the day's volume.
    #[allow(clippy::too_many_arguments)]
    async fn post(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        at: &At,
        booking: &Booking<'_>,
        leg_index: usize,
        leg: &LegSpec,
        amount: i128,
    ) -> Result<(), ProjectionError> {
        let account = leg.account.as_str();
        let effective_at = booking.effective_at;
        let key: Key = (effective_at, at.version, leg_index as i32);
        let overflow = || ProjectionError::Inconsistent {
            ledger: ledger.to_owned(),
            reason: format!("running balance of {account} overflows"),
        };
        let statement = self.statement(conn, ledger, account).await?;
        let delta = if leg.side == statement.normal {
            amount
        } else {
            -amount
        };
        // `None`: backdated before the statement's last entry, whose balance moves by `delta` (as does
        // every other later entry's).
        let appended = match statement.tail {
            Some((tail, balance)) if key < tail => {
                statement.tail = Some((tail, balance.checked_add(delta).ok_or_else(overflow)?));
                None
            }
            tail => {
                let balance_after = tail
                    .map_or(0, |(_, b)| b)
                    .checked_add(delta)
                    .ok_or_else(overflow)?;
                statement.tail = Some((key, balance_after));
                Some(balance_after)
            }
        };
        match appended {
            Some(balance_after) => self.entries.push(EntryRow {
                ledger: ledger.to_owned(),
                account: account.to_owned(),
                key,
                transfer_id: booking.transfer_id,
                description: booking.description.to_owned(),
                side: leg.side,
                amount,
                balance_after,
                recorded_at: at.recorded_at,
            }),
            // Rare, so it goes row by row in SQL, once the buffered entries are written.
            None => {
                self.write_entries(conn).await?;
                shift_in(conn, ledger, account, at, booking, key, leg, amount, delta).await?;
            }
        }
        let i = if leg.side == Side::Debit { 0 } else { 1 };
        let totals = self.total(ledger, account, at.version);
        totals.amounts[i] += amount;
        totals.last_entry_at = totals.last_entry_at.max(Some(effective_at));
        let volume = self
            .volumes
            .entry((
                ledger.to_owned(),
                account.to_owned(),
                effective_at.date_naive(),
            ))
            .or_insert_with(|| (leg.currency.as_str().to_owned(), 0, 0, 0));
        match leg.side {
            Side::Debit => volume.1 += amount,
            Side::Credit => volume.2 += amount,
        }
        volume.3 += 1;
        Ok(())
    }

    /// Inserts the buffered statement entries in one statement.
    async fn write_entries(&mut self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let e = std::mem::take(&mut self.entries);
        if e.len() >= COPY_AT {
            return copy_in(conn, &copy_entries(None), entry_rows(&e)).await;
        }
        bind_entries(sqlx::query(INSERT_ENTRIES), &e)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes everything gathered and moves the ledgers' versions and checkpoints (`moved`: ledger,
    /// version, position), all in one statement: each round trip of a projected group waits for a turn
    /// on cores the writer keeps busy, and the group's time is most of the projection lag. Tables with
    /// nothing to write get empty arrays, which cost nothing.
    pub(crate) async fn finish(
        self,
        conn: &mut PgConnection,
        projection: &str,
        moved: &[Moved],
    ) -> Result<(), ProjectionError> {
        // A large group (a projector catching up, or behind a bulk load) sends its new rows with binary
        // `COPY`, which spares PostgreSQL building and taking apart arrays and parsing numerics from
        // text: a fifth of the writing statement's time for such a group. A small one keeps the single
        // round trip.
        let (e, t): (&[EntryRow], &[NewTransfer]) =
            if self.entries.len() + self.transfers.len() >= COPY_AT {
                copy_in(conn, &copy_entries(None), entry_rows(&self.entries)).await?;
                copy_in(conn, &copy_transfers(None), transfer_rows(&self.transfers)).await?;
                (&[], &[])
            } else {
                (&self.entries, &self.transfers)
            };
        let totals: Vec<_> = self.totals.into_iter().collect();
        let total = |i: usize| {
            totals
                .iter()
                .map(|(_, t)| t.amounts[i].to_string())
                .collect::<Vec<_>>()
        };
        let volumes: Vec<_> = self.volumes.into_iter().collect();
        bind_entries(sqlx::query(FINISH), e)
            .bind(t.iter().map(|t| t.ledger.as_str()).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.id).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.row.status).collect::<Vec<_>>())
            .bind(
                t.iter()
                    .map(|t| serde_json::to_value(&t.row.legs).unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
            .bind(
                t.iter()
                    .map(|t| {
                        let posted = t.row.posted.as_ref()?;
                        Some(serde_json::to_value(posted).unwrap_or_default())
                    })
                    .collect::<Vec<_>>(),
            )
            .bind(t.iter().map(|t| t.row.effective_at).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.row.recorded_at).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.row.expires_at).collect::<Vec<_>>())
            .bind(
                t.iter()
                    .map(|t| t.row.description.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(t.iter().map(|t| t.row.metadata.clone()).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.row.reverses).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.row.corrects).collect::<Vec<_>>())
            .bind(
                t.iter()
                    .map(|t| t.row.reason.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(t.iter().map(|t| t.row.reversed_by).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.row.created_version).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.row.version).collect::<Vec<_>>())
            .bind(
                totals
                    .iter()
                    .map(|((l, _), _)| l.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                totals
                    .iter()
                    .map(|((_, c), _)| c.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(total(0))
            .bind(total(1))
            .bind(total(2))
            .bind(total(3))
            .bind(totals.iter().map(|(_, t)| t.version).collect::<Vec<_>>())
            .bind(
                volumes
                    .iter()
                    .map(|((l, _, _), _)| l.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                volumes
                    .iter()
                    .map(|((_, a, _), _)| a.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(volumes.iter().map(|((_, _, d), _)| *d).collect::<Vec<_>>())
            .bind(
                volumes
                    .iter()
                    .map(|(_, v)| v.0.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                volumes
                    .iter()
                    .map(|(_, v)| v.1.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(
                volumes
                    .iter()
                    .map(|(_, v)| v.2.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(volumes.iter().map(|(_, v)| v.3).collect::<Vec<_>>())
            .bind(projection)
            .bind(moved.iter().map(|m| m.0.as_str()).collect::<Vec<_>>())
            .bind(moved.iter().map(|m| m.1).collect::<Vec<_>>())
            .bind(moved.iter().map(|m| m.2).collect::<Vec<_>>())
            .bind(
                totals
                    .iter()
                    .map(|(_, t)| t.last_entry_at)
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Rows a group writes from which on they go by `COPY` (see [`Changes::finish`]). Smaller groups, such
/// as the single-transfer load's (tens of events), keep their one round trip: waiting for a turn on a
/// busy core costs them more than the parsing.
const COPY_AT: usize = 1_000;

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
    for e in entries {
        rows.text(&e.ledger)
            .text(&e.account)
            .time(e.key.0)
            .int8(e.key.1)
            .int4(e.key.2)
            .uuid(e.transfer_id)
            .text(side(e.side))
            .numeric(e.amount)
            .numeric(e.balance_after)
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

/// The buffered entries, written ahead of a backdated one (see `Changes::post`).
const INSERT_ENTRIES: &str = "insert into entries (ledger_id, account, effective_at, version, leg, transfer_id, side, amount, \
     balance_after, recorded_at, description) \
     select ledger_id, account, effective_at, version, leg, transfer_id, side, amount::numeric, \
            balance::numeric, recorded_at, description \
     from unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[], $5::int4[], $6::uuid[], \
                 $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[]) \
          as t(ledger_id, account, effective_at, version, leg, transfer_id, side, amount, balance, \
               recorded_at, description)";

/// Binds entry rows as the eleven arrays `$1`–`$11` that both statements inserting entries unnest.
fn bind_entries<'q>(
    query: Query<'q, Postgres, PgArguments>,
    e: &'q [EntryRow],
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(e.iter().map(|e| e.ledger.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.account.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.key.0).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.key.1).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.key.2).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.transfer_id).collect::<Vec<_>>())
        .bind(e.iter().map(|e| side(e.side)).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.amount.to_string()).collect::<Vec<_>>())
        .bind(
            e.iter()
                .map(|e| e.balance_after.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(e.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.description.as_str()).collect::<Vec<_>>())
}

/// [`Changes::finish`]'s statement. Its parts touch different tables (or different rows: the ledgers'
/// versions and the checkpoints), so sharing one snapshot changes nothing; an unreferenced
/// data-modifying CTE still runs to completion.
const FINISH: &str = "\
with new_entries as ( \
    insert into entries (ledger_id, account, effective_at, version, leg, transfer_id, side, amount, \
                         balance_after, recorded_at, description) \
    select ledger_id, account, effective_at, version, leg, transfer_id, side, amount::numeric, \
           balance::numeric, recorded_at, description \
    from unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[], $5::int4[], $6::uuid[], \
                $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[]) \
         as t(ledger_id, account, effective_at, version, leg, transfer_id, side, amount, balance, recorded_at, \
              description)), \
new_transfers as ( \
    insert into transfers (ledger_id, transfer_id, status, legs, posted_amounts, effective_at, recorded_at, \
                           expires_at, description, metadata, reverses, corrects, reason, reversed_by, \
                           created_version, version) \
    select * from unnest($12::text[], $13::uuid[], $14::text[], $15::jsonb[], $16::jsonb[], \
                         $17::timestamptz[], $18::timestamptz[], $19::timestamptz[], $20::text[], \
                         $21::jsonb[], $22::uuid[], $23::uuid[], $24::text[], $25::uuid[], $26::int8[], \
                         $27::int8[])), \
totals as ( \
    update accounts a set debits_posted = a.debits_posted + d.dp::numeric, \
                          credits_posted = a.credits_posted + d.cp::numeric, \
                          debits_pending = a.debits_pending + d.dr::numeric, \
                          credits_pending = a.credits_pending + d.cr::numeric, \
                          version = greatest(a.version, d.v), \
                          last_entry_at = greatest(a.last_entry_at, d.at) \
    from unnest($28::text[], $29::text[], $30::text[], $31::text[], $32::text[], $33::text[], $34::int8[], \
                $46::timestamptz[]) \
         as d(ledger_id, code, dp, cp, dr, cr, v, at) \
    where a.ledger_id = d.ledger_id and a.code = d.code), \
volumes as ( \
    insert into daily_volumes (ledger_id, account, day, currency, debits, credits, entries) \
    select ledger_id, account, day, currency, debits::numeric, credits::numeric, entries \
    from unnest($35::text[], $36::text[], $37::date[], $38::text[], $39::text[], $40::text[], $41::int8[]) \
         as t(ledger_id, account, day, currency, debits, credits, entries) \
    on conflict (ledger_id, account, day) do update \
    set debits = daily_volumes.debits + excluded.debits, \
        credits = daily_volumes.credits + excluded.credits, \
        entries = daily_volumes.entries + excluded.entries), \
moved_ledgers as ( \
    update ledgers l set version = d.version \
    from unnest($43::text[], $44::int8[]) as d(ledger_id, version) \
    where l.ledger_id = d.ledger_id) \
update checkpoints c set version = d.version, position = d.position, updated_at = now() \
from unnest($43::text[], $44::int8[], $45::int8[]) as d(ledger_id, version, position) \
where c.projection = $42 and c.ledger_id = d.ledger_id";

/// An account's code, normal side, business time of its last entry, and net posted total.
type StatementRow = (String, String, Option<DateTime<Utc>>, String);

fn statement_from_row(ledger: &str, row: StatementRow) -> Result<Statement, ProjectionError> {
    let (code, normal, last_entry_at, balance) = row;
    let inconsistent = |reason: String| ProjectionError::Inconsistent {
        ledger: ledger.to_owned(),
        reason,
    };
    let normal = match normal.as_str() {
        "debit" => Side::Debit,
        "credit" => Side::Credit,
        other => {
            return Err(inconsistent(format!(
                "account {code} has normal side {other}"
            )));
        }
    };
    let tail = match last_entry_at {
        Some(effective_at) => {
            let balance = balance.parse::<i128>().map_err(|e| {
                inconsistent(format!("balance {balance} of {code} is out of range: {e}"))
            })?;
            // Versions start at 1, so version 0 stands for "some entry at this business time": every
            // entry a later event books at that time sorts after it, every earlier time before it.
            Some(((effective_at, 0, 0), balance))
        }
        None => None,
    };
    Ok(Statement { normal, tail })
}

fn transfer_row(
    ledger: &str,
    at: &At,
    transfer: TransferSpec,
    status: &'static str,
    effective_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> NewTransfer {
    let posted = (status == "posted").then(|| transfer.legs.iter().map(|l| l.amount).collect());
    NewTransfer {
        ledger: ledger.to_owned(),
        id: transfer.id.0,
        row: TransferRow {
            status,
            posted,
            effective_at,
            recorded_at: at.recorded_at,
            expires_at,
            metadata: serde_json::to_value(&transfer.metadata).unwrap_or_default(),
            description: transfer.description,
            legs: transfer.legs,
            reverses: None,
            corrects: None,
            reason: None,
            reversed_by: None,
            created_version: at.version,
            version: at.version,
        },
    }
}

async fn set_status(
    conn: &mut PgConnection,
    ledger: &str,
    code: &str,
    status: &str,
    v: i64,
) -> Result<(), ProjectionError> {
    sqlx::query("update accounts set status = $3, version = $4 where ledger_id = $1 and code = $2")
        .bind(ledger)
        .bind(code)
        .bind(status)
        .bind(v)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts an entry backdated before existing ones: its balance follows the entry before it, and every
/// later entry's balance moves by `delta`.
#[allow(clippy::too_many_arguments)]
async fn shift_in(
    conn: &mut PgConnection,
    ledger: &str,
    account: &str,
    at: &At,
    booking: &Booking<'_>,
    key: Key,
    leg: &LegSpec,
    amount: i128,
    delta: i128,
) -> Result<(), ProjectionError> {
    // One statement: the CTEs share one snapshot, so the update does not see the row `ins` adds.
    sqlx::query(
        "with ins as ( \
             insert into entries (ledger_id, account, effective_at, version, leg, transfer_id, side, amount, \
                                  balance_after, recorded_at, description) \
             select $1, $2, $4, $3, $5, $6, $7, $8::numeric, \
                    coalesce((select balance_after from entries \
                              where ledger_id = $1 and account = $2 and (effective_at, version, leg) < ($4, $3, $5) \
                              order by effective_at desc, version desc, leg desc limit 1), 0) + $9::numeric, \
                    $10, $11 \
             returning 1) \
         update entries set balance_after = balance_after + $9::numeric \
         where ledger_id = $1 and account = $2 and (effective_at, version, leg) > ($4, $3, $5)",
    )
    .bind(ledger)
    .bind(account)
    .bind(key.1)
    .bind(key.0)
    .bind(key.2)
    .bind(booking.transfer_id)
    .bind(side(leg.side))
    .bind(amount.to_string())
    .bind(delta.to_string())
    .bind(at.recorded_at)
    .bind(booking.description)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
