//! How the database's refusals of an append become [`StoreError`] variants that name what was refused.

use sqlx::postgres::PgDatabaseError;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::NewEvent;

/// The refusal raised by `tally_claim_log` (migration 0007; SQLSTATE 55000, which nothing else of ours
/// raises), or any other error as it is.
pub(super) fn claim_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("55000") => {
            StoreError::WroteBeforeAppend
        }
        _ => StoreError::Database(err),
    }
}

/// Names the unique constraint an insert violated. The offending id is taken from the error's detail
/// (`Key (...)=(...) already exists.`), matched against the batch's own ids, so a localised server message
/// does not matter.
pub(super) fn insert_error(err: sqlx::Error, stream_id: &str, events: &[NewEvent]) -> StoreError {
    let err = match claim_error(err) {
        StoreError::Database(err) => err,
        claim => return claim,
    };
    let sqlx::Error::Database(db) = &err else {
        return StoreError::Database(err);
    };
    if !db.is_unique_violation() {
        return StoreError::Database(err);
    }
    let detail = db
        .try_downcast_ref::<PgDatabaseError>()
        .and_then(PgDatabaseError::detail)
        .unwrap_or_default();
    let named = |id: &Uuid| detail.contains(&format!("{id})"));
    match db.constraint() {
        Some("events_stream_transfer_key") => {
            match events
                .iter()
                .filter_map(|event| event.transfer_id)
                .find(named)
            {
                Some(transfer_id) => StoreError::DuplicateTransfer {
                    stream_id: stream_id.to_owned(),
                    transfer_id,
                },
                None => StoreError::Database(err),
            }
        }
        Some("events_event_id_key") => {
            match events.iter().map(|event| event.event_id).find(named) {
                Some(event_id) => StoreError::DuplicateEvent { event_id },
                None => StoreError::Database(err),
            }
        }
        // The head row said the slot was free, yet an event occupies it: the head is behind its events.
        Some("events_stream_version_key") => StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            reason: "an event exists beyond the stream head".to_owned(),
        },
        _ => StoreError::Database(err),
    }
}
