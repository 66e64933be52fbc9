//! Reading the store: one stream in version order ([`EventStore::read_stream`] and its variants), the
//! transfers a writer recalls, the versions callers resolve, the global log ([`EventStore::read_all`],
//! gap-safe) and the list of streams.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::EventStore;
use crate::error::StoreError;
use crate::event::{PayloadEvent, PublishableEvent, RecordedEvent};

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

/// A row of the global log as one of its readers wants it.
trait LogRow: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin {
    /// The select list over `events`.
    const COLUMNS: &'static str;
}

impl LogRow for RecordedEvent {
    const COLUMNS: &'static str = event_columns!();
}

impl LogRow for PublishableEvent {
    const COLUMNS: &'static str = "position, stream_id, version, event_id, event_type, schema_version, \
         payload::text as payload, metadata, recorded_at";
}

/// A stream and its current version, for tooling.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamInfo {
    pub stream_id: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl EventStore {
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

    /// Like [`EventStore::read_stream`], with only what replaying needs and the payload as JSON text.
    /// Stream versions have no gaps, so the page is the versions `(from, from + limit]`; the query says
    /// so, which keeps the plan a range scan of the stream's index even before statistics exist.
    pub async fn read_stream_payloads(
        &self,
        stream_id: &str,
        from_version_exclusive: i64,
        limit: i64,
    ) -> Result<Vec<PayloadEvent>, StoreError> {
        let limit = clamp_limit(limit);
        let events = sqlx::query_as(
            "select position, version, event_type, schema_version, payload::text as payload, recorded_at \
             from events where stream_id = $1 and version > $2 and version <= $2 + $3 \
             order by version limit $3",
        )
        .bind(stream_id)
        .bind(from_version_exclusive)
        .bind(limit)
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

    /// Events of `stream_id` that create or change any of `transfers` (the index of migration 0011), or
    /// sit at any of `versions`, in version order: what a writer needs to recall transfers it no longer
    /// holds in memory.
    pub async fn transfer_history(
        &self,
        stream_id: &str,
        transfers: &[Uuid],
        versions: &[i64],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = sqlx::query_as(concat!(
            "select ",
            event_columns!(),
            " from events where stream_id = $1 and (transfer_id = any($2) \
               or (event_type in ('PendingTransferPosted', 'PendingTransferVoided', \
                                  'PendingTransferExpired', 'TransferReversed') \
                   and tally_transfer_ref(event_type, payload) = any($2)) \
               or version = any($3)) \
             order by version"
        ))
        .bind(stream_id)
        .bind(transfers)
        .bind(versions)
        .fetch_all(&self.pool)
        .await?;
        Ok(events)
    }

    /// The highest version among the events of `stream_id` that created any of `transfers`, or `None` if
    /// none did: the version an append of those transfers reached. Served by the unique index on
    /// `(stream_id, transfer_id)`.
    pub async fn latest_version_of_transfers<'e>(
        executor: impl PgExecutor<'e>,
        stream_id: &str,
        transfers: &[Uuid],
    ) -> Result<Option<i64>, StoreError> {
        let version = sqlx::query_scalar(
            "select max(version) from events where stream_id = $1 and transfer_id = any($2)",
        )
        .bind(stream_id)
        .bind(transfers)
        .fetch_one(executor)
        .await?;
        Ok(version)
    }

    /// The stream's version as known at `at`: that of its last event recorded by then, 0 if none was.
    /// Runs on the caller's connection or transaction, like [`EventStore::head_version`].
    pub async fn version_known_at<'e>(
        executor: impl PgExecutor<'e>,
        stream_id: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        // Recorded times follow versions; the scan walks back from the head and stops at the first event
        // recorded by then, so it is short for recent instants.
        let version = sqlx::query_scalar(
            "select version from events where stream_id = $1 and recorded_at <= $2 \
             order by version desc limit 1",
        )
        .bind(stream_id)
        .bind(at)
        .fetch_optional(executor)
        .await?;
        Ok(version.unwrap_or(0))
    }

    /// The global log after the event at `after_position` (0: from the start), at most `limit` events
    /// (capped at [`MAX_READ_LIMIT`]). Pass the position of the last event returned to get the next page.
    ///
    /// Gap-safe: an event is returned only once every transaction that started writing before its own has
    /// finished, so no event can commit later at an earlier place in the log. The log is therefore ordered by
    /// (writing transaction, position), not by position alone: two transactions can take positions in one
    /// order and their transaction ids in the other, and ordering by position would then have to skip one.
    /// Within a page, positions can thus go down where a transaction boundary falls; a stream's events
    /// always come in version order. Only transactions that can add events hold the log back
    /// (`tally_log_horizon`, migration 0007): a long-running append holds it until it ends, other writes
    /// on the server (the projector's, other databases') do not.
    ///
    /// Fails with `UnknownPosition` if `after_position` is not 0 and no event has it.
    pub async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_as(after_position, limit).await
    }

    /// [`EventStore::read_all`] with only what publishing needs, the payloads as JSON text.
    pub async fn read_all_publishable(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<PublishableEvent>, StoreError> {
        self.read_all_as(after_position, limit).await
    }

    async fn read_all_as<T: LogRow>(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<T>, StoreError> {
        let limit = clamp_limit(limit);
        // A statement of its own: the read below then takes a newer snapshot, which sees every writer that
        // ended while the horizon was being decided.
        let horizon: String = sqlx::query_scalar("select tally_log_horizon()::text")
            .fetch_one(&self.pool)
            .await?;
        if after_position <= 0 {
            let sql = format!(
                "select {} from events where tx < $2::xid8 order by tx, position limit $1",
                T::COLUMNS
            );
            let events = sqlx::query_as(&sql)
                .bind(limit)
                .bind(&horizon)
                .fetch_all(&self.pool)
                .await?;
            return Ok(events);
        }
        // The cursor is one event; its (tx, position) is where the page starts. The lateral join lets the
        // page be a range scan of events_log_order starting at that key.
        let sql = format!(
            "select e.* from (select tx, position from events where position = $1) as after_event \
             cross join lateral (select {} from events \
               where (tx, position) > (after_event.tx, after_event.position) \
                 and tx < $3::xid8 \
               order by tx, position limit $2) as e",
            T::COLUMNS
        );
        let events: Vec<T> = sqlx::query_as(&sql)
            .bind(after_position)
            .bind(limit)
            .bind(&horizon)
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

fn clamp_limit(limit: i64) -> i64 {
    limit.clamp(0, MAX_READ_LIMIT)
}
