//! Ledger and account events: each is one small statement, run when the event is applied.

use super::Changes;
use super::postings::Statement;
use crate::error::ProjectionError;
use crate::rows::{OpenedAccount, json_str, side};
use crate::stored::At;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tally_domain::{AccountCode, Limits, Metadata};

pub(super) async fn create_ledger(
    conn: &mut PgConnection,
    ledger: &str,
    name: &str,
    created_at: DateTime<Utc>,
    at: &At,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into ledgers (ledger_id, name, created_at, version) values ($1, $2, $3, $4)",
    )
    .bind(ledger)
    .bind(name)
    .bind(created_at)
    .bind(at.version)
    .execute(conn)
    .await?;
    Ok(())
}

impl Changes {
    /// Inserts the account's row; its statement starts empty.
    pub(super) async fn open_account(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        account: OpenedAccount,
        at: &At,
    ) -> Result<(), ProjectionError> {
        let normal = account.account_type.normal_side();
        sqlx::query(
            "insert into accounts (ledger_id, code, account_type, normal_side, currency, scale, status, \
             floor, ceiling, metadata, version) \
             values ($1, $2, $3, $4, $5, $6, 'open', $7::numeric, $8::numeric, $9, $10)",
        )
        .bind(ledger)
        .bind(account.code.as_str())
        .bind(json_str(&account.account_type))
        .bind(side(normal))
        .bind(account.currency.code.as_str())
        .bind(i16::from(account.currency.scale))
        .bind(account.limits.floor.map(|f| f.to_string()))
        .bind(account.limits.ceiling.map(|c| c.to_string()))
        .bind(serde_json::to_value(&account.metadata).unwrap_or_default())
        .bind(at.version)
        .execute(conn)
        .await?;
        let key = (ledger.to_owned(), account.code.as_str().to_owned());
        self.statements
            .insert(key, Statement { normal, tail: None });
        Ok(())
    }
}

/// Freezes, unfreezes or closes an account.
pub(super) async fn set_status(
    conn: &mut PgConnection,
    ledger: &str,
    code: &AccountCode,
    status: &str,
    at: &At,
) -> Result<(), ProjectionError> {
    sqlx::query("update accounts set status = $3, version = $4 where ledger_id = $1 and code = $2")
        .bind(ledger)
        .bind(code.as_str())
        .bind(status)
        .bind(at.version)
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn change_limits(
    conn: &mut PgConnection,
    ledger: &str,
    code: &AccountCode,
    limits: &Limits,
    at: &At,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update accounts set floor = $3::numeric, ceiling = $4::numeric, version = $5 \
         where ledger_id = $1 and code = $2",
    )
    .bind(ledger)
    .bind(code.as_str())
    .bind(limits.floor.map(|f| f.to_string()))
    .bind(limits.ceiling.map(|c| c.to_string()))
    .bind(at.version)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn change_metadata(
    conn: &mut PgConnection,
    ledger: &str,
    code: &AccountCode,
    metadata: &Metadata,
    at: &At,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update accounts set metadata = $3, version = $4 where ledger_id = $1 and code = $2",
    )
    .bind(ledger)
    .bind(code.as_str())
    .bind(serde_json::to_value(metadata).unwrap_or_default())
    .bind(at.version)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn close_period(
    conn: &mut PgConnection,
    ledger: &str,
    through: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    sqlx::query("update ledgers set closed_through = $2 where ledger_id = $1")
        .bind(ledger)
        .bind(through)
        .execute(conn)
        .await?;
    Ok(())
}
