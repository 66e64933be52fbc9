//! Appending to one stream: [`EventStore::append`] in a transaction of its own, [`append_in_tx`] in the
//! caller's, and [`claim_log`] for a caller that writes other tables before it appends.

use std::collections::HashSet;

use sqlx::{Postgres, Transaction};

use super::EventStore;
use super::errors::{claim_error, insert_error};
use super::heads::{fetch_head, to_hash};
use super::statement::{Appending, call_append};
use crate::error::StoreError;
use crate::event::NewEvent;
use crate::hash::GENESIS_HASH;

/// The outcome of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append: the version of its last event.
    pub version: i64,
    /// The global positions of the appended events, in the order they were given.
    pub positions: Vec<i64>,
    /// The hash of the stream's last event, which the next append chains from.
    pub head_hash: [u8; 32],
}

impl EventStore {
    /// Appends `events` to `stream_id` atomically, if the stream is at `expected_version` (0: the stream
    /// must not exist yet). See [`append_in_tx`] for the checks.
    ///
    /// If the commit itself fails (for example the connection drops), whether the events were recorded is
    /// unknown; retrying the same events then answers `DuplicateEvent` if they were.
    #[tracing::instrument(name = "eventstore.append", skip(self, events), fields(events = events.len()))]
    pub async fn append(
        &self,
        stream_id: &str,
        expected_version: i64,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        if events.is_empty() {
            let mut tx = self.pool.begin().await?;
            let result = append_in_tx(&mut tx, stream_id, expected_version, events).await?;
            tx.commit().await?;
            return Ok(result);
        }
        check_batch(stream_id, events)?;
        let mut tx = self.pool.begin().await?;
        let mut appends = [Appending::new(stream_id, expected_version, events)];
        self.heads.guess(&mut tx, &mut appends).await?;
        let [appending] = appends;
        let result = append_alone(&mut tx, appending).await?;
        self.heads.remember(stream_id, &result);
        let result = result?;
        tx.commit().await?;
        tracing::debug!(version = result.version, "appended");
        Ok(result)
    }
}

/// Appends `events` to `stream_id` inside the caller's transaction; nothing is visible until the caller
/// commits, and on any error the caller must roll back (dropping the transaction does).
///
/// - `expected_version` is the version the caller's decision was based on, 0 for a stream that must not
///   exist yet; otherwise the answer is `Conflict` with the stream's actual version.
/// - A transfer id may appear once per stream, ever: `DuplicateTransfer` names it, and nothing of the batch
///   is written. Likewise an event id once in the whole store (`DuplicateEvent`).
/// - The stream's head row stays locked until the transaction ends, so appenders of one stream queue.
/// - An empty batch writes nothing and only checks the expected version.
///
/// The caller's transaction must not have written before an earlier append to this stream committed (see
/// `StaleTransaction`); a transaction that begins with the append always satisfies that.
pub async fn append_in_tx(
    tx: &mut Transaction<'_, Postgres>,
    stream_id: &str,
    expected_version: i64,
    events: &[NewEvent],
) -> Result<AppendResult, StoreError> {
    if events.is_empty() {
        let (version, head_hash) = match fetch_head(&mut **tx, stream_id).await? {
            Some((version, hash)) => (version, to_hash(stream_id, hash)?),
            None => (0, GENESIS_HASH),
        };
        if version != expected_version {
            return Err(StoreError::Conflict {
                stream_id: stream_id.to_owned(),
                expected: expected_version,
                actual: version,
            });
        }
        return Ok(AppendResult {
            version,
            positions: Vec::new(),
            head_hash,
        });
    }

    check_batch(stream_id, events)?;

    let mut appending = Appending::new(stream_id, expected_version, events);
    appending.prev = Some(match expected_version {
        0 => GENESIS_HASH,
        _ => match fetch_head(&mut **tx, stream_id).await? {
            // Not locked: `tally_append` checks the hash under the lock.
            Some((_, hash)) => to_hash(stream_id, hash)?,
            None => GENESIS_HASH,
        },
    });
    let result = append_alone(tx, appending).await??;
    tracing::debug!(version = result.version, "appended");
    Ok(result)
}

/// Runs `tally_append` for one stream whose head hash is filled in. The outer error is the statement's,
/// naming the offending id when a unique key refused the batch; the inner one is the stream's outcome.
async fn append_alone(
    tx: &mut Transaction<'_, Postgres>,
    appending: Appending<'_>,
) -> Result<Result<AppendResult, StoreError>, StoreError> {
    let (stream_id, events) = (appending.stream_id, appending.events);
    let mut appends = [appending];
    call_append(tx, &mut appends)
        .await
        .map_err(|err| insert_error(err, stream_id, events))?;
    let [appending] = appends;
    Ok(appending.into_result())
}

/// Claims the transaction's place in the global log before it writes anything else, so it may write other
/// tables first and append events later in the same transaction. Needed only then: an append claims by
/// itself, and a transaction that wrote first without claiming is refused (`WroteBeforeAppend`).
pub async fn claim_log(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("select tally_claim_log()")
        .execute(&mut **tx)
        .await
        .map_err(claim_error)?;
    Ok(())
}

/// The errors an append refuses before touching the database: a transfer id or event id twice in the
/// batch. Caught here so the error can name the id; the unique indexes are the backstop.
pub(super) fn check_batch(stream_id: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for transfer_id in events.iter().filter_map(|event| event.transfer_id) {
        if !seen.insert(transfer_id) {
            return Err(StoreError::DuplicateTransfer {
                stream_id: stream_id.to_owned(),
                transfer_id,
            });
        }
    }
    let mut seen = HashSet::new();
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(StoreError::DuplicateEvent {
                event_id: event.event_id,
            });
        }
    }
    Ok(())
}
