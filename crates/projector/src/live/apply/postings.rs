//! Booking a leg: its statement entry with the running balance after it, its account's totals and its
//! day's volume. Where an account's statement ends comes from its own row, read once per transaction.

use super::{Changes, Totals};
use crate::error::ProjectionError;
use crate::rows::{Booking, Posting, Volume, side};
use crate::stored::At;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tally_domain::{LegSpec, Side};
use uuid::Uuid;

/// An entry's place in its account's statement: business time, then the version and leg that booked it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct EntryKey {
    pub effective_at: DateTime<Utc>,
    pub version: i64,
    pub leg: i32,
}

/// The last entry of a statement (already written or still buffered) and the running balance after it.
#[derive(Clone, Copy)]
pub(super) struct Tail {
    key: EntryKey,
    balance: i128,
}

/// What posting to an account needs to know: its normal side, and where its statement ends.
pub(super) struct Statement {
    pub normal: Side,
    pub tail: Option<Tail>,
}

/// A statement entry, but for its running balance.
pub(super) struct Entry {
    pub ledger: String,
    pub account: String,
    pub key: EntryKey,
    pub transfer_id: Uuid,
    pub description: String,
    pub side: Side,
    pub amount: i128,
    pub recorded_at: DateTime<Utc>,
}

/// An entry appended at the end of its statement, buffered until the transaction writes.
pub(super) struct EntryRow {
    pub entry: Entry,
    pub balance_after: i128,
}

/// Where a new entry lands in its statement.
enum Placed {
    /// At the end, with this running balance.
    Appended(i128),
    /// Before the last entry: it and every later one move by the entry's delta.
    Backdated(i128),
}

/// An account's code, normal side, business time of its last entry, and net posted total.
#[derive(sqlx::FromRow)]
struct StatementRow {
    code: String,
    normal_side: String,
    last_entry_at: Option<DateTime<Utc>>,
    balance: String,
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
                                      else credits_posted - debits_posted end)::text as balance \
             from accounts where ledger_id = $1 and code = any($2::text[])",
        )
        .bind(ledger)
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let code = row.code.clone();
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

    fn total(&mut self, ledger: &str, account: &str, version: i64) -> &mut Totals {
        let totals = self
            .totals
            .entry((ledger.to_owned(), account.to_owned()))
            .or_insert(Totals {
                balances: Default::default(),
                version,
                last_entry_at: None,
            });
        totals.version = totals.version.max(version);
        totals
    }

    /// Moves the pending total of `leg`'s side on its account by `delta`.
    pub(super) fn reserve(&mut self, ledger: &str, leg: &LegSpec, delta: i128, version: i64) {
        let totals = self.total(ledger, leg.account.as_str(), version);
        totals.balances.reserve(leg.side, delta);
    }

    /// Books one posted leg: its statement entry, the account's totals and the day's volume.
    pub(super) async fn post(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        at: &At,
        booking: &Booking<'_>,
        posting: Posting<'_>,
    ) -> Result<(), ProjectionError> {
        let leg = posting.leg;
        let entry = Entry {
            ledger: ledger.to_owned(),
            account: leg.account.as_str().to_owned(),
            key: EntryKey {
                effective_at: booking.effective_at,
                version: at.version,
                leg: posting.index as i32,
            },
            transfer_id: booking.transfer_id,
            description: booking.description.to_owned(),
            side: leg.side,
            amount: posting.amount,
            recorded_at: at.recorded_at,
        };
        match self.place(conn, &entry).await? {
            Placed::Appended(balance_after) => self.entries.push(EntryRow {
                entry,
                balance_after,
            }),
            // Rare, so it goes row by row in SQL, once the buffered entries are written.
            Placed::Backdated(delta) => {
                self.write_entries(conn).await?;
                shift_in(conn, &entry, delta).await?;
            }
        }
        let totals = self.total(ledger, leg.account.as_str(), at.version);
        totals.balances.post(leg.side, posting.amount);
        totals.last_entry_at = totals.last_entry_at.max(Some(booking.effective_at));
        let day = (
            ledger.to_owned(),
            leg.account.as_str().to_owned(),
            booking.effective_at.date_naive(),
        );
        let volume = self
            .volumes
            .entry(day)
            .or_insert_with(|| Volume::new(leg.currency.as_str()));
        volume.add(leg.side, posting.amount);
        Ok(())
    }

    /// Moves `entry`'s statement tail past it, or (backdated) the tail's balance by its delta.
    async fn place(
        &mut self,
        conn: &mut PgConnection,
        entry: &Entry,
    ) -> Result<Placed, ProjectionError> {
        let statement = self.statement(conn, &entry.ledger, &entry.account).await?;
        let delta = if entry.side == statement.normal {
            entry.amount
        } else {
            -entry.amount
        };
        let overflow = || ProjectionError::Inconsistent {
            ledger: entry.ledger.clone(),
            reason: format!("running balance of {} overflows", entry.account),
        };
        let tail = statement.tail;
        let balance = tail.map_or(0, |t| t.balance);
        let balance = balance.checked_add(delta).ok_or_else(overflow)?;
        match tail {
            Some(tail) if entry.key < tail.key => {
                statement.tail = Some(Tail { balance, ..tail });
                Ok(Placed::Backdated(delta))
            }
            _ => {
                statement.tail = Some(Tail {
                    key: entry.key,
                    balance,
                });
                Ok(Placed::Appended(balance))
            }
        }
    }
}

fn statement_from_row(ledger: &str, row: StatementRow) -> Result<Statement, ProjectionError> {
    let inconsistent = |reason: String| ProjectionError::Inconsistent {
        ledger: ledger.to_owned(),
        reason,
    };
    let code = &row.code;
    let normal = match row.normal_side.as_str() {
        "debit" => Side::Debit,
        "credit" => Side::Credit,
        other => {
            return Err(inconsistent(format!(
                "account {code} has normal side {other}"
            )));
        }
    };
    let Some(effective_at) = row.last_entry_at else {
        return Ok(Statement { normal, tail: None });
    };
    let balance = row.balance.parse::<i128>().map_err(|e| {
        inconsistent(format!(
            "balance {} of {code} is out of range: {e}",
            row.balance
        ))
    })?;
    // Versions start at 1, so version 0 stands for "some entry at this business time", which every
    // entry a later event books at that time sorts after.
    let key = EntryKey {
        effective_at,
        version: 0,
        leg: 0,
    };
    let tail = Some(Tail { key, balance });
    Ok(Statement { normal, tail })
}

/// Inserts an entry backdated before existing ones: its balance follows the entry before it, and every
/// later entry's balance moves by `delta`.
async fn shift_in(
    conn: &mut PgConnection,
    entry: &Entry,
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
    .bind(&entry.ledger)
    .bind(&entry.account)
    .bind(entry.key.version)
    .bind(entry.key.effective_at)
    .bind(entry.key.leg)
    .bind(entry.transfer_id)
    .bind(side(entry.side))
    .bind(entry.amount.to_string())
    .bind(delta.to_string())
    .bind(entry.recorded_at)
    .bind(&entry.description)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
