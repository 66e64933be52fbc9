//! The projection's checkpoints in `read.checkpoints`, and how far each ledger's is from the store.

use crate::error::ProjectionError;
use sqlx::PgPool;
use std::collections::HashMap;
use tally_eventstore::EventStore;

/// The name of the projection that keeps every table of the `read` schema.
pub const PROJECTION: &str = "ledger";

/// One ledger's projected version next to its stored one.
pub struct LedgerStatus {
    pub ledger: String,
    pub projected: i64,
    pub stored: i64,
}

/// Every stored ledger, in `ledger_id` order, with the version `read` has projected (0 if none): the
/// streams come from the store, the checkpoints from the read schema, joined here.
pub(crate) async fn ledger_status(
    pool: &PgPool,
    store: &EventStore,
) -> Result<Vec<LedgerStatus>, ProjectionError> {
    // Checkpoints first: a stream only grows, so the store read after them is never behind them.
    let projected: HashMap<String, i64> =
        sqlx::query_as("select ledger_id, version from read.checkpoints where projection = $1")
            .bind(PROJECTION)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let streams = store.list_streams().await?;
    Ok(streams
        .into_iter()
        .map(|s| LedgerStatus {
            projected: projected.get(&s.stream_id).copied().unwrap_or(0),
            stored: s.version,
            ledger: s.stream_id,
        })
        .collect())
}
