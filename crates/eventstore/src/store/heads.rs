//! Stream heads: the version and last hash of each stream (`streams`), read for callers and remembered
//! per store so an append can chain its events before it has locked the head row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::{PgExecutor, Postgres, Transaction};

use super::EventStore;
use super::append::AppendResult;
use super::statement::Appending;
use crate::error::StoreError;
use crate::hash::GENESIS_HASH;

/// Heads remembered per store: each is ~100 bytes; beyond this the cache starts afresh (a miss costs one
/// query), so memory stays bounded however many streams a process touches.
const MAX_CACHED_HEADS: usize = 100_000;

/// A stream's version and the hash of its last event.
type Head = (i64, [u8; 32]);

/// The heads of streams this store appended to, shared by clones of the store.
#[derive(Debug, Clone, Default)]
pub(super) struct HeadCache(Arc<Mutex<HashMap<String, Head>>>);

impl HeadCache {
    /// Fills in the head hash each append chains from: the genesis hash for a new stream, the hash this
    /// store last saw at the expected version, or else the committed head (one query for all). A wrong
    /// guess costs a second round under the lock, never a wrong chain: `tally_append` checks it.
    pub async fn guess(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        appends: &mut [Appending<'_>],
    ) -> Result<(), StoreError> {
        let mut unknown = Vec::new();
        {
            let heads = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for appending in appends.iter_mut().filter(|a| a.prev.is_none()) {
                appending.prev = match appending.expected {
                    0 => Some(GENESIS_HASH),
                    expected => heads
                        .get(appending.stream_id)
                        .filter(|(version, _)| *version == expected)
                        .map(|(_, hash)| *hash),
                };
                if appending.prev.is_none() {
                    unknown.push(appending.stream_id);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("select stream_id, head_hash from streams where stream_id = any($1)")
                .bind(&unknown)
                .fetch_all(&mut **tx)
                .await?;
        for appending in appends.iter_mut().filter(|a| a.prev.is_none()) {
            // A missing head makes tally_append answer Conflict; any hash does until then.
            appending.prev = Some(GENESIS_HASH);
            if let Some((stream_id, hash)) = rows.iter().find(|(s, _)| s == appending.stream_id) {
                appending.prev = Some(to_hash(stream_id, hash.clone())?);
            }
        }
        Ok(())
    }

    /// Keeps the head an append produced (or forgets a stream that conflicted), for the next guess.
    pub fn remember(&self, stream_id: &str, result: &Result<AppendResult, StoreError>) {
        let mut heads = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(result) => {
                if heads.len() >= MAX_CACHED_HEADS && !heads.contains_key(stream_id) {
                    heads.clear();
                }
                heads.insert(stream_id.to_owned(), (result.version, result.head_hash));
            }
            Err(_) => {
                heads.remove(stream_id);
            }
        }
    }
}

impl EventStore {
    /// The stream's current version and the hash of its last event, or `None` if it has no events.
    pub async fn stream_head(&self, stream_id: &str) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        Ok(fetch_head(&self.pool, stream_id).await?)
    }

    /// The stream's current version, 0 if it has no events. Runs on the caller's connection or
    /// transaction, so it can be read in the same snapshot as the caller's other reads.
    pub async fn head_version<'e>(
        executor: impl PgExecutor<'e>,
        stream_id: &str,
    ) -> Result<i64, StoreError> {
        Ok(fetch_head(executor, stream_id)
            .await?
            .map_or(0, |(version, _)| version))
    }
}

/// The stream's head row as last committed (not locked), if it has one.
pub(super) async fn fetch_head<'e>(
    executor: impl PgExecutor<'e>,
    stream_id: &str,
) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("select version, head_hash from streams where stream_id = $1")
        .bind(stream_id)
        .fetch_optional(executor)
        .await
}

pub(super) fn to_hash(stream_id: &str, bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            reason: format!("head hash is {} bytes long", bytes.len()),
        })
}
