//! Transfer events: their legs are booked in memory (`postings.rs`), their rows are created in memory
//! and changed there while this transaction holds them; an older row is updated in place.

use super::{Changes, NewTransfer};
use crate::error::ProjectionError;
use crate::rows::{Booking, Posting, TransferRow};
use crate::stored::At;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use tally_domain::{Amount, Correction, LegSpec, ReversalSpec, TransferSpec};
use uuid::Uuid;

/// What a later event needs of a transfer it settles.
struct Reserved {
    legs: Vec<LegSpec>,
    description: String,
}

impl Changes {
    pub(super) async fn post_transfer(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        transfer: TransferSpec,
        correction: Option<Correction>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) -> Result<(), ProjectionError> {
        let booking = Booking {
            transfer_id: transfer.id.0,
            description: &transfer.description,
            effective_at,
        };
        for (index, leg) in transfer.legs.iter().enumerate() {
            let posting = Posting::whole(index, leg);
            self.post(conn, ledger, at, &booking, posting).await?;
        }
        let id = transfer.id.0;
        let row = TransferRow::posted(transfer, correction.as_ref(), effective_at, at);
        self.insert_transfer(ledger, id, row);
        Ok(())
    }

    pub(super) fn reserve_transfer(
        &mut self,
        ledger: &str,
        transfer: TransferSpec,
        effective_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        at: &At,
    ) {
        for leg in &transfer.legs {
            self.reserve(ledger, leg, leg.amount.get(), at.version);
        }
        let id = transfer.id.0;
        let row = TransferRow::created(transfer, "pending", effective_at, Some(expires_at), at);
        self.insert_transfer(ledger, id, row);
    }

    /// Posts a pending transfer (in full or in part): its reservation is released, `amounts` booked.
    pub(super) async fn post_pending(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        id: Uuid,
        amounts: Vec<Amount>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) -> Result<(), ProjectionError> {
        let reserved = self.reserved(conn, ledger, id).await?;
        let booking = Booking {
            transfer_id: id,
            description: &reserved.description,
            effective_at,
        };
        for (index, (leg, amount)) in reserved.legs.iter().zip(&amounts).enumerate() {
            self.reserve(ledger, leg, -leg.amount.get(), at.version);
            let posting = Posting {
                index,
                leg,
                amount: amount.get(),
            };
            self.post(conn, ledger, at, &booking, posting).await?;
        }
        if let Some(t) = self.new_transfer(ledger, id) {
            t.status = "posted";
            t.posted = Some(amounts);
            t.effective_at = effective_at;
            t.version = at.version;
            return Ok(());
        }
        sqlx::query(
            "update transfers set status = 'posted', posted_amounts = $3, effective_at = $4, \
             version = $5 where ledger_id = $1 and transfer_id = $2",
        )
        .bind(ledger)
        .bind(id)
        .bind(serde_json::to_value(&amounts).unwrap_or_default())
        .bind(effective_at)
        .bind(at.version)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Voids or expires a pending transfer: its reservation is released.
    pub(super) async fn release(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        id: Uuid,
        status: &'static str,
        at: &At,
    ) -> Result<(), ProjectionError> {
        for leg in self.reserved(conn, ledger, id).await?.legs {
            self.reserve(ledger, &leg, -leg.amount.get(), at.version);
        }
        if let Some(t) = self.new_transfer(ledger, id) {
            t.status = status;
            t.version = at.version;
            return Ok(());
        }
        sqlx::query(
            "update transfers set status = $3, version = $4 where ledger_id = $1 and transfer_id = $2",
        )
        .bind(ledger)
        .bind(id)
        .bind(status)
        .bind(at.version)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Books the mirrored legs as a new transfer and marks the original reversed.
    pub(super) async fn reverse_transfer(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        reversal: ReversalSpec,
        legs: Vec<LegSpec>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) -> Result<(), ProjectionError> {
        let id = reversal.id.0;
        let booking = Booking::reversal(id, effective_at);
        for (index, leg) in legs.iter().enumerate() {
            self.post(conn, ledger, at, &booking, Posting::whole(index, leg))
                .await?;
        }
        let row = TransferRow::reversal(&reversal, legs, effective_at, at);
        self.insert_transfer(ledger, id, row);
        let original = reversal.original.0;
        if let Some(t) = self.new_transfer(ledger, original) {
            t.status = "reversed";
            t.reversed_by = Some(id);
            t.version = at.version;
            return Ok(());
        }
        sqlx::query(
            "update transfers set status = 'reversed', reversed_by = $3, version = $4 \
             where ledger_id = $1 and transfer_id = $2",
        )
        .bind(ledger)
        .bind(original)
        .bind(id)
        .bind(at.version)
        .execute(conn)
        .await?;
        Ok(())
    }

    fn insert_transfer(&mut self, ledger: &str, id: Uuid, row: TransferRow) {
        self.new_transfers
            .insert((ledger.to_owned(), id), self.transfers.len());
        self.transfers.push(NewTransfer {
            ledger: ledger.to_owned(),
            id,
            row,
        });
    }

    /// The row of a transfer this transaction created, still in memory.
    fn new_transfer(&mut self, ledger: &str, id: Uuid) -> Option<&mut TransferRow> {
        let i = *self.new_transfers.get(&(ledger.to_owned(), id))?;
        self.transfers.get_mut(i).map(|t| &mut t.row)
    }

    /// A transfer's legs and description, from this transaction's new rows or the table.
    async fn reserved(
        &mut self,
        conn: &mut PgConnection,
        ledger: &str,
        id: Uuid,
    ) -> Result<Reserved, ProjectionError> {
        if let Some(t) = self.new_transfer(ledger, id) {
            let (legs, description) = (t.legs.clone(), t.description.clone());
            return Ok(Reserved { legs, description });
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
        Ok(Reserved { legs, description })
    }
}
