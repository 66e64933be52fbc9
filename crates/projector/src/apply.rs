//! How each event changes the read models: plain SQL against the tables in the current `search_path`
//! (`read`, or the fresh schema of a rebuild).

use crate::error::ProjectionError;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};
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

pub(crate) async fn apply(
    conn: &mut PgConnection,
    deltas: &mut Deltas,
    ledger: &str,
    at: &At,
    event: &Event,
) -> Result<(), ProjectionError> {
    let v = at.version;
    match event {
        Event::LedgerCreated { name, created_at } => {
            sqlx::query("insert into ledgers (ledger_id, name, created_at, version) values ($1, $2, $3, $4)")
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
            .bind(json_str(account_type))
            .bind(side(account_type.normal_side()))
            .bind(currency.code.as_str())
            .bind(i16::from(currency.scale))
            .bind(limits.floor.map(|f| f.to_string()))
            .bind(limits.ceiling.map(|c| c.to_string()))
            .bind(serde_json::to_value(metadata).unwrap_or_default())
            .bind(v)
            .execute(&mut *conn)
            .await?;
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
            sqlx::query("update accounts set metadata = $3, version = $4 where ledger_id = $1 and code = $2")
                .bind(ledger)
                .bind(code.as_str())
                .bind(serde_json::to_value(metadata).unwrap_or_default())
                .bind(v)
                .execute(&mut *conn)
                .await?;
        }
        Event::TransferPosted {
            transfer,
            recorded_at,
            correction,
        } => {
            let effective_at = transfer.effective_at.unwrap_or(*recorded_at);
            insert_transfer(conn, ledger, at, transfer, "posted", effective_at, None).await?;
            if let Some(c) = correction {
                sqlx::query("update transfers set corrects = $3, reason = $4 where ledger_id = $1 and transfer_id = $2")
                    .bind(ledger)
                    .bind(transfer.id.0)
                    .bind(c.of.0)
                    .bind(c.reason.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            for (i, leg) in transfer.legs.iter().enumerate() {
                post_entry(
                    conn,
                    deltas,
                    ledger,
                    at,
                    transfer.id.0,
                    i,
                    leg,
                    leg.amount.get(),
                    effective_at,
                )
                .await?;
            }
        }
        Event::TransferReserved {
            transfer,
            recorded_at,
            expires_at,
        } => {
            let effective_at = transfer.effective_at.unwrap_or(*recorded_at);
            insert_transfer(
                conn,
                ledger,
                at,
                transfer,
                "pending",
                effective_at,
                Some(*expires_at),
            )
            .await?;
            for leg in &transfer.legs {
                deltas.pending(leg, leg.amount.get(), v);
            }
        }
        Event::PendingTransferPosted {
            id,
            amounts,
            effective_at,
            ..
        } => {
            let legs = transfer_legs(conn, ledger, id.0).await?;
            for (i, (leg, amount)) in legs.iter().zip(amounts).enumerate() {
                deltas.pending(leg, -leg.amount.get(), v);
                post_entry(
                    conn,
                    deltas,
                    ledger,
                    at,
                    id.0,
                    i,
                    leg,
                    amount.get(),
                    *effective_at,
                )
                .await?;
            }
            sqlx::query(
                "update transfers set status = 'posted', posted_amounts = $3, effective_at = $4, version = $5 \
                 where ledger_id = $1 and transfer_id = $2",
            )
            .bind(ledger)
            .bind(id.0)
            .bind(serde_json::to_value(amounts).unwrap_or_default())
            .bind(effective_at)
            .bind(v)
            .execute(&mut *conn)
            .await?;
        }
        Event::PendingTransferVoided { id, .. } => {
            release(conn, deltas, ledger, v, id.0, "voided").await?
        }
        Event::PendingTransferExpired { id, .. } => {
            release(conn, deltas, ledger, v, id.0, "expired").await?
        }
        Event::TransferReversed {
            reversal,
            legs,
            effective_at,
            ..
        } => {
            let spec = TransferSpec {
                id: reversal.id,
                legs: legs.clone(),
                effective_at: Some(*effective_at),
                description: String::new(),
                metadata: Default::default(),
                pending: None,
            };
            insert_transfer(conn, ledger, at, &spec, "posted", *effective_at, None).await?;
            sqlx::query("update transfers set reverses = $3, reason = $4 where ledger_id = $1 and transfer_id = $2")
                .bind(ledger)
                .bind(reversal.id.0)
                .bind(reversal.original.0)
                .bind(reversal.reason.as_str())
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "update transfers set status = 'reversed', reversed_by = $3, version = $4 \
                 where ledger_id = $1 and transfer_id = $2",
            )
            .bind(ledger)
            .bind(reversal.original.0)
            .bind(reversal.id.0)
            .bind(v)
            .execute(&mut *conn)
            .await?;
            for (i, leg) in legs.iter().enumerate() {
                post_entry(
                    conn,
                    deltas,
                    ledger,
                    at,
                    reversal.id.0,
                    i,
                    leg,
                    leg.amount.get(),
                    *effective_at,
                )
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

/// The serde name of a unit enum variant (`asset`, `debit`).
fn json_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
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

async fn insert_transfer(
    conn: &mut PgConnection,
    ledger: &str,
    at: &At,
    transfer: &TransferSpec,
    status: &str,
    effective_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), ProjectionError> {
    let posted = (status == "posted").then(|| {
        serde_json::to_value(transfer.legs.iter().map(|l| l.amount).collect::<Vec<_>>())
            .unwrap_or_default()
    });
    sqlx::query(
        "insert into transfers (ledger_id, transfer_id, status, legs, posted_amounts, effective_at, recorded_at, \
         expires_at, description, metadata, created_version, version) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(ledger)
    .bind(transfer.id.0)
    .bind(status)
    .bind(serde_json::to_value(&transfer.legs).unwrap_or_default())
    .bind(posted)
    .bind(effective_at)
    .bind(at.recorded_at)
    .bind(expires_at)
    .bind(&transfer.description)
    .bind(serde_json::to_value(&transfer.metadata).unwrap_or_default())
    .bind(at.version)
    .execute(conn)
    .await?;
    Ok(())
}

async fn transfer_legs(
    conn: &mut PgConnection,
    ledger: &str,
    id: Uuid,
) -> Result<Vec<LegSpec>, ProjectionError> {
    let row = sqlx::query("select legs from transfers where ledger_id = $1 and transfer_id = $2")
        .bind(ledger)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let inconsistent = |reason: String| ProjectionError::Inconsistent {
        ledger: ledger.to_owned(),
        reason,
    };
    let legs: serde_json::Value = row
        .ok_or_else(|| inconsistent(format!("transfer {id} is not projected")))?
        .try_get("legs")?;
    serde_json::from_value(legs).map_err(|e| inconsistent(format!("legs of {id}: {e}")))
}

async fn release(
    conn: &mut PgConnection,
    deltas: &mut Deltas,
    ledger: &str,
    v: i64,
    id: Uuid,
    status: &str,
) -> Result<(), ProjectionError> {
    for leg in transfer_legs(conn, ledger, id).await? {
        deltas.pending(&leg, -leg.amount.get(), v);
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

/// Books one posted leg: the statement entry with its running balance (and the running balance of any
/// entry it was backdated before) now; the account's totals and the day's volume into `deltas`.
#[allow(clippy::too_many_arguments)]
async fn post_entry(
    conn: &mut PgConnection,
    deltas: &mut Deltas,
    ledger: &str,
    at: &At,
    transfer_id: Uuid,
    leg_index: usize,
    leg: &LegSpec,
    amount: i128,
    effective_at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    let normal = deltas
        .normal_side(conn, ledger, leg.account.as_str())
        .await?;
    let delta = if side(leg.side) == normal {
        amount
    } else {
        -amount
    };
    // One statement: the CTEs share one snapshot, so `later` does not see the row `ins` adds.
    sqlx::query(
        "with ins as ( \
             insert into entries (ledger_id, account, effective_at, version, leg, transfer_id, side, amount, \
                                  balance_after, recorded_at) \
             select $1, $2, $4, $3, $5, $6, $7, $8::numeric, \
                    coalesce((select balance_after from entries \
                              where ledger_id = $1 and account = $2 and (effective_at, version, leg) < ($4, $3, $5) \
                              order by effective_at desc, version desc, leg desc limit 1), 0) + $9::numeric, \
                    $10 \
             returning 1) \
         update entries set balance_after = balance_after + $9::numeric \
         where ledger_id = $1 and account = $2 and (effective_at, version, leg) > ($4, $3, $5)",
    )
    .bind(ledger)
    .bind(leg.account.as_str())
    .bind(at.version)
    .bind(effective_at)
    .bind(leg_index as i32)
    .bind(transfer_id)
    .bind(side(leg.side))
    .bind(amount.to_string())
    .bind(delta.to_string())
    .bind(at.recorded_at)
    .execute(&mut *conn)
    .await?;
    deltas.posted(leg, amount, at.version, effective_at);
    Ok(())
}

/// Changes to hot rows (an account's totals, a day's volume) gathered over a batch and written once at
/// its end: updating one row thousands of times in a transaction makes every update walk the row's
/// growing version chain.
#[derive(Default)]
pub(crate) struct Deltas {
    /// debits posted, credits posted, debits pending, credits pending; and the last version.
    accounts: HashMap<String, ([i128; 4], i64)>,
    normal: HashMap<String, String>,
    volumes: HashMap<(String, NaiveDate), (String, i128, i128, i64)>,
}

impl Deltas {
    fn slot(&mut self, account: &str, v: i64) -> &mut [i128; 4] {
        let entry = self
            .accounts
            .entry(account.to_owned())
            .or_insert(([0; 4], v));
        entry.1 = entry.1.max(v);
        &mut entry.0
    }

    fn pending(&mut self, leg: &LegSpec, delta: i128, v: i64) {
        let i = if leg.side == Side::Debit { 2 } else { 3 };
        self.slot(leg.account.as_str(), v)[i] += delta;
    }

    fn posted(&mut self, leg: &LegSpec, amount: i128, v: i64, effective_at: DateTime<Utc>) {
        let i = if leg.side == Side::Debit { 0 } else { 1 };
        self.slot(leg.account.as_str(), v)[i] += amount;
        let volume = self
            .volumes
            .entry((leg.account.as_str().to_owned(), effective_at.date_naive()))
            .or_insert_with(|| (leg.currency.as_str().to_owned(), 0, 0, 0));
        match leg.side {
            Side::Debit => volume.1 += amount,
            Side::Credit => volume.2 += amount,
        }
        volume.3 += 1;
    }

    async fn normal_side(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        account: &str,
    ) -> Result<String, ProjectionError> {
        if let Some(normal) = self.normal.get(account) {
            return Ok(normal.clone());
        }
        let normal: Option<String> = sqlx::query_scalar(
            "select normal_side from accounts where ledger_id = $1 and code = $2",
        )
        .bind(ledger)
        .bind(account)
        .fetch_optional(&mut *conn)
        .await?;
        let normal = normal.ok_or_else(|| ProjectionError::Inconsistent {
            ledger: ledger.to_owned(),
            reason: format!("account {account} is not projected"),
        })?;
        self.normal.insert(account.to_owned(), normal.clone());
        Ok(normal)
    }

    /// Writes the gathered changes; called once, just before the batch's checkpoint moves.
    pub(crate) async fn flush(
        self,
        conn: &mut PgConnection,
        ledger: &str,
    ) -> Result<(), ProjectionError> {
        for (account, (t, v)) in self.accounts {
            sqlx::query(
                "update accounts set debits_posted = debits_posted + $3::numeric, \
                 credits_posted = credits_posted + $4::numeric, debits_pending = debits_pending + $5::numeric, \
                 credits_pending = credits_pending + $6::numeric, version = greatest(version, $7) \
                 where ledger_id = $1 and code = $2",
            )
            .bind(ledger)
            .bind(&account)
            .bind(t[0].to_string())
            .bind(t[1].to_string())
            .bind(t[2].to_string())
            .bind(t[3].to_string())
            .bind(v)
            .execute(&mut *conn)
            .await?;
        }
        for ((account, day), (currency, debits, credits, entries)) in self.volumes {
            sqlx::query(
                "insert into daily_volumes (ledger_id, account, day, currency, debits, credits, entries) \
                 values ($1, $2, $3, $4, $5::numeric, $6::numeric, $7) \
                 on conflict (ledger_id, account, day) do update \
                 set debits = daily_volumes.debits + excluded.debits, \
                     credits = daily_volumes.credits + excluded.credits, \
                     entries = daily_volumes.entries + excluded.entries",
            )
            .bind(ledger)
            .bind(&account)
            .bind(day)
            .bind(&currency)
            .bind(debits.to_string())
            .bind(credits.to_string())
            .bind(entries)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
