//! `EventStore`: appending to a stream, and reading streams and the global log.

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sqlx::postgres::PgDatabaseError;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{NewEvent, RecordedEvent};
use crate::hash::{EventFields, GENESIS_HASH, event_hash};

/// The most events one read returns, whatever limit the caller asks for: a page must fit comfortably in
/// memory and in one response. Callers page until a read returns fewer events than they asked for.
pub const MAX_READ_LIMIT: i64 = 10_000;

/// The columns of `events` that make a [`RecordedEvent`], in its field order.
macro_rules! event_columns {
    () => {
        "position, stream_id, version, event_id, event_type, schema_version, payload, metadata, \
         recorded_at, transfer_id, prev_hash, hash"
    };
}

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

/// A stream and its current version, for tooling.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamInfo {
    pub stream_id: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// The event store over a Postgres pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

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
        let mut tx = self.pool.begin().await?;
        let result = append_in_tx(&mut tx, stream_id, expected_version, events).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Events of `stream_id` with versions above `from_version_exclusive`, in version order, at most
    /// `limit` (capped at [`MAX_READ_LIMIT`]).
    pub async fn read_stream(
        &self,
        stream_id: &str,
        from_version_exclusive: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = sqlx::query_as(concat!(
            "select ",
            event_columns!(),
            " from events where stream_id = $1 and version > $2 order by version limit $3"
        ))
        .bind(stream_id)
        .bind(from_version_exclusive)
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(events)
    }

    /// Events of `stream_id` with versions in `(from_version_exclusive, to_version_inclusive]`, in version
    /// order; at most [`MAX_READ_LIMIT`] of them, so read a longer range in several calls.
    pub async fn read_stream_range(
        &self,
        stream_id: &str,
        from_version_exclusive: i64,
        to_version_inclusive: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = sqlx::query_as(concat!(
            "select ",
            event_columns!(),
            " from events where stream_id = $1 and version > $2 and version <= $3 order by version limit $4"
        ))
        .bind(stream_id)
        .bind(from_version_exclusive)
        .bind(to_version_inclusive)
        .bind(MAX_READ_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        Ok(events)
    }

    /// The stream's current version and the hash of its last event, or `None` if it has no events.
    pub async fn stream_head(&self, stream_id: &str) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let head = sqlx::query_as("select version, head_hash from streams where stream_id = $1")
            .bind(stream_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(head)
    }

    /// The global log after the event at `after_position` (0: from the start), at most `limit` events
    /// (capped at [`MAX_READ_LIMIT`]). Pass the position of the last event returned to get the next page.
    ///
    /// Gap-safe: an event is returned only once every transaction that started writing before its own has
    /// finished, so no event can commit later at an earlier place in the log. The log is therefore ordered by
    /// (writing transaction, position), not by position alone: two transactions can take positions in one
    /// order and their transaction ids in the other, and ordering by position would then have to skip one.
    /// Within a page, positions can thus go down where a transaction boundary falls; a stream's events
    /// always come in version order. A long-running writing transaction anywhere on the server holds the
    /// log back until it ends.
    ///
    /// Fails with `UnknownPosition` if `after_position` is not 0 and no event has it.
    pub async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = clamp_limit(limit);
        if after_position <= 0 {
            let events = sqlx::query_as(concat!(
                "select ",
                event_columns!(),
                " from events where tx < pg_snapshot_xmin(pg_current_snapshot()) order by tx, position limit $1"
            ))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            return Ok(events);
        }
        // The cursor is one event; its (tx, position) is where the page starts. The lateral join lets the
        // page be a range scan of events_log_order starting at that key.
        let events: Vec<RecordedEvent> = sqlx::query_as(concat!(
            "select e.* from (select tx, position from events where position = $1) as after_event \
             cross join lateral (select ",
            event_columns!(),
            " from events \
               where (tx, position) > (after_event.tx, after_event.position) \
                 and tx < pg_snapshot_xmin(pg_current_snapshot()) \
               order by tx, position limit $2) as e"
        ))
        .bind(after_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if events.is_empty() {
            let known: bool =
                sqlx::query_scalar("select exists (select 1 from events where position = $1)")
                    .bind(after_position)
                    .fetch_one(&self.pool)
                    .await?;
            if !known {
                return Err(StoreError::UnknownPosition {
                    position: after_position,
                });
            }
        }
        Ok(events)
    }

    /// Every stream with its version, ordered by id.
    pub async fn list_streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        let streams =
            sqlx::query_as("select stream_id, version, updated_at from streams order by stream_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(streams)
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
    let conflict = |actual| StoreError::Conflict {
        stream_id: stream_id.to_owned(),
        expected: expected_version,
        actual,
    };

    if events.is_empty() {
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as("select version, head_hash from streams where stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&mut **tx)
                .await?;
        let (version, head_hash) = match head {
            Some((version, hash)) => (version, to_hash(stream_id, hash)?),
            None => (0, GENESIS_HASH),
        };
        if version != expected_version {
            return Err(conflict(version));
        }
        return Ok(AppendResult {
            version,
            positions: Vec::new(),
            head_hash,
        });
    }

    // Caught here, before any statement, so the error can name the id; the unique index is the backstop.
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

    let mut prev_hash = lock_head(tx, stream_id, expected_version).await?;

    let count = events.len();
    let mut versions = Vec::with_capacity(count);
    let mut event_ids = Vec::with_capacity(count);
    let mut event_types = Vec::with_capacity(count);
    let mut schema_versions = Vec::with_capacity(count);
    let mut payloads = Vec::with_capacity(count);
    let mut metadatas = Vec::with_capacity(count);
    let mut recorded_ats = Vec::with_capacity(count);
    let mut transfer_ids = Vec::with_capacity(count);
    let mut prev_hashes = Vec::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);
    let mut version = expected_version;
    for event in events {
        version += 1;
        let metadata: Value = event.metadata.to_json();
        // Postgres keeps microseconds; storing exactly what was hashed keeps the chain verifiable.
        let recorded_at = event.recorded_at.trunc_subsecs(6);
        let hash = event_hash(
            &prev_hash,
            &EventFields {
                stream_id,
                version,
                event_id: event.event_id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                payload: &event.payload,
                metadata: &metadata,
                recorded_at,
                transfer_id: event.transfer_id,
            },
        );
        versions.push(version);
        event_ids.push(event.event_id);
        event_types.push(event.event_type.as_str());
        schema_versions.push(event.schema_version);
        payloads.push(&event.payload);
        metadatas.push(metadata);
        recorded_ats.push(recorded_at);
        transfer_ids.push(event.transfer_id);
        prev_hashes.push(prev_hash.to_vec());
        hashes.push(hash.to_vec());
        prev_hash = hash;
    }

    // One statement for the whole batch: this is the hot path, and a round trip per event would dominate
    // it. `order by` makes positions ascend with versions.
    let mut rows: Vec<(i64, i64)> = sqlx::query_as(
        "insert into events (stream_id, version, event_id, event_type, schema_version, payload, metadata, \
                             recorded_at, transfer_id, prev_hash, hash) \
         select $1, b.version, b.event_id, b.event_type, b.schema_version, b.payload, b.metadata, \
                b.recorded_at, b.transfer_id, b.prev_hash, b.hash \
         from unnest($2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::jsonb[], $7::jsonb[], \
                     $8::timestamptz[], $9::uuid[], $10::bytea[], $11::bytea[]) \
              as b (version, event_id, event_type, schema_version, payload, metadata, recorded_at, \
                    transfer_id, prev_hash, hash) \
         order by b.version \
         returning version, position",
    )
    .bind(stream_id)
    .bind(&versions)
    .bind(&event_ids)
    .bind(&event_types)
    .bind(&schema_versions)
    .bind(&payloads)
    .bind(&metadatas)
    .bind(&recorded_ats)
    .bind(&transfer_ids)
    .bind(&prev_hashes)
    .bind(&hashes)
    .fetch_all(&mut **tx)
    .await
    .map_err(|err| insert_error(err, stream_id, events))?;
    rows.sort_unstable_by_key(|(version, _)| *version);
    let positions = rows.into_iter().map(|(_, position)| position).collect();

    let updated = sqlx::query(
        "update streams set version = $3, head_hash = $4, last_tx = pg_current_xact_id(), updated_at = now() \
         where stream_id = $1 and version = $2",
    )
    .bind(stream_id)
    .bind(expected_version)
    .bind(version)
    .bind(&prev_hash[..])
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated != 1 {
        // Unreachable while the head row is locked; kept so a change to the locking fails safe.
        let actual = current_version(tx, stream_id).await?;
        return Err(conflict(actual));
    }

    tracing::debug!(version, "appended");
    Ok(AppendResult {
        version,
        positions,
        head_hash: prev_hash,
    })
}

/// Takes the stream's head row for this transaction (creating it for a new stream) and returns the hash
/// the batch chains from, or `Conflict` if the stream is not at `expected_version`.
async fn lock_head(
    tx: &mut Transaction<'_, Postgres>,
    stream_id: &str,
    expected_version: i64,
) -> Result<[u8; 32], StoreError> {
    let conflict = |actual| StoreError::Conflict {
        stream_id: stream_id.to_owned(),
        expected: expected_version,
        actual,
    };

    if expected_version == 0 {
        // A placeholder row at version 0 claims the stream; it is updated to the real head before commit,
        // so no committed row ever says 0. A concurrent creator waits here and then finds the row taken.
        let claimed = sqlx::query(
            "insert into streams (stream_id, version, head_hash) values ($1, 0, $2) \
             on conflict (stream_id) do nothing",
        )
        .bind(stream_id)
        .bind(&GENESIS_HASH[..])
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if claimed == 1 {
            return Ok(GENESIS_HASH);
        }
        let actual = current_version(tx, stream_id).await?;
        return Err(conflict(actual));
    }

    // The row lock queues the stream's appenders until each commits; `no key update` because the key never
    // changes, so nothing that merely references a stream has to wait. When this waits for another
    // appender, Postgres re-reads the row once that one commits, so the version compared below is the
    // committed one. `<=`: a transaction may append to the same stream more than once.
    let head: Option<(i64, Vec<u8>, bool)> = sqlx::query_as(
        "select version, head_hash, last_tx <= pg_current_xact_id() from streams \
         where stream_id = $1 for no key update",
    )
    .bind(stream_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((version, head_hash, in_log_order)) = head else {
        return Err(conflict(0));
    };
    if version != expected_version {
        return Err(conflict(version));
    }
    if !in_log_order {
        return Err(StoreError::StaleTransaction {
            stream_id: stream_id.to_owned(),
        });
    }
    to_hash(stream_id, head_hash)
}

async fn current_version(
    tx: &mut Transaction<'_, Postgres>,
    stream_id: &str,
) -> Result<i64, StoreError> {
    let version: Option<i64> =
        sqlx::query_scalar("select version from streams where stream_id = $1")
            .bind(stream_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(version.unwrap_or(0))
}

fn to_hash(stream_id: &str, bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            reason: format!("head hash is {} bytes long", bytes.len()),
        })
}

/// Names the unique constraint an insert violated. The offending id is taken from the error's detail
/// (`Key (...)=(...) already exists.`), matched against the batch's own ids, so a localised server message
/// does not matter.
fn insert_error(err: sqlx::Error, stream_id: &str, events: &[NewEvent]) -> StoreError {
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

fn clamp_limit(limit: i64) -> i64 {
    limit.clamp(0, MAX_READ_LIMIT)
}
