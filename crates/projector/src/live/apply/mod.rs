//! What each event changes in the read models on the incremental path, one function per event. The
//! events of one transaction are folded into new rows and deltas in memory ([`Changes`]) and written
//! together when it ends (`write.rs`), since a round trip per event and leg would keep the projector
//! behind the writer. Tables are those of the current `search_path` (`read`, or a rebuild's schema).

mod accounts;
mod postings;
mod transfers;
mod write;

use crate::error::ProjectionError;
use crate::rows::{Balances, OpenedAccount, TransferRow, Volume};
use crate::stored::At;
use chrono::{DateTime, NaiveDate, Utc};
use postings::{EntryRow, Statement};
use sqlx::PgConnection;
use std::collections::HashMap;
use tally_domain::Event;
use uuid::Uuid;

pub(crate) use write::Moved;

/// A ledger and one of its accounts.
type AccountKey = (String, String);

/// A transfer created in this transaction: its ledger, id and row, still changed in memory.
struct NewTransfer {
    ledger: String,
    id: Uuid,
    row: TransferRow,
}

/// How a transaction moves one account's row.
struct Totals {
    balances: Balances,
    /// The last version that changed the account.
    version: i64,
    /// Business time of the latest entry booked, if any (`read.accounts.last_entry_at`).
    last_entry_at: Option<DateTime<Utc>>,
}

/// Everything a transaction will write, gathered per ledger and account. Transfers created in the
/// transaction are changed in memory; only older ones are updated in place, at once.
#[derive(Default)]
pub(crate) struct Changes {
    statements: HashMap<AccountKey, Statement>,
    totals: HashMap<AccountKey, Totals>,
    transfers: Vec<NewTransfer>,
    new_transfers: HashMap<(String, Uuid), usize>,
    entries: Vec<EntryRow>,
    volumes: HashMap<(String, String, NaiveDate), Volume>,
}

impl Changes {
    /// Applies one event of `ledger`, the one at `at`.
    pub(crate) async fn apply(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        at: &At,
        event: Event,
    ) -> Result<(), ProjectionError> {
        match event {
            Event::LedgerCreated { name, created_at } => {
                accounts::create_ledger(conn, ledger, &name, created_at, at).await
            }
            Event::AccountOpened {
                code,
                account_type,
                currency,
                limits,
                metadata,
            } => {
                let account = OpenedAccount {
                    code,
                    account_type,
                    currency,
                    limits,
                    metadata,
                };
                self.open_account(conn, ledger, account, at).await
            }
            Event::AccountFrozen { code } => {
                accounts::set_status(conn, ledger, &code, "frozen", at).await
            }
            Event::AccountUnfrozen { code } => {
                accounts::set_status(conn, ledger, &code, "open", at).await
            }
            Event::AccountClosed { code } => {
                accounts::set_status(conn, ledger, &code, "closed", at).await
            }
            Event::AccountLimitsChanged { code, limits } => {
                accounts::change_limits(conn, ledger, &code, &limits, at).await
            }
            Event::AccountMetadataChanged { code, metadata } => {
                accounts::change_metadata(conn, ledger, &code, &metadata, at).await
            }
            Event::TransferPosted {
                transfer,
                recorded_at,
                correction,
                ..
            } => {
                let effective_at = transfer.effective_at.unwrap_or(recorded_at);
                (self.post_transfer(conn, ledger, transfer, correction, effective_at, at)).await
            }
            Event::TransferReserved {
                transfer,
                recorded_at,
                expires_at,
                ..
            } => {
                let effective_at = transfer.effective_at.unwrap_or(recorded_at);
                self.reserve_transfer(ledger, transfer, effective_at, expires_at, at);
                Ok(())
            }
            Event::PendingTransferPosted {
                id,
                amounts,
                effective_at,
                ..
            } => (self.post_pending(conn, ledger, id.0, amounts, effective_at, at)).await,
            Event::PendingTransferVoided { id, .. } => {
                self.release(conn, ledger, id.0, "voided", at).await
            }
            Event::PendingTransferExpired { id, .. } => {
                self.release(conn, ledger, id.0, "expired", at).await
            }
            Event::TransferReversed {
                reversal,
                legs,
                effective_at,
                ..
            } => (self.reverse_transfer(conn, ledger, reversal, legs, effective_at, at)).await,
            Event::PeriodClosed { through, .. } => {
                accounts::close_period(conn, ledger, through).await
            }
        }
    }
}
