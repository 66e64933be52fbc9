//! Snapshots: a stream's folded state at a version, so loading a long stream starts near its end.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::StoreError;
use crate::store::EventStore;

/// How many snapshots are kept per stream. More than one, so that if the newest cannot be read (its state
/// shape was retired, or a fold bug is found) a reader can fall back to an older one before replaying from
/// the start; few, so the table does not grow with the stream.
pub const KEPT_SNAPSHOTS: i64 = 3;

/// A stream's state as of `version`, in the shape `schema_version` names.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub stream_id: String,
    pub version: i64,
    pub schema_version: i32,
    pub state: Value,
    pub created_at: DateTime<Utc>,
}

/// A row of `snapshots`, its state still bytes.
type SnapshotRow = (String, i64, i32, Vec<u8>, DateTime<Utc>);

impl EventStore {
    /// Saves `state` as of `version` (replacing a snapshot at the same version) and deletes all but the
    /// newest [`KEPT_SNAPSHOTS`] of the stream, in one transaction.
    pub async fn save_snapshot(
        &self,
        stream_id: &str,
        version: i64,
        schema_version: i32,
        state: &Value,
    ) -> Result<(), StoreError> {
        self.save_snapshot_json(stream_id, version, schema_version, &state.to_string())
            .await
    }

    /// [`EventStore::save_snapshot`] with the state already serialised as JSON text, so a large state is
    /// written without building a `Value` tree first (the writer serialises off its hot path).
    pub async fn save_snapshot_json(
        &self,
        stream_id: &str,
        version: i64,
        schema_version: i32,
        state: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // A snapshot is derived data: one lost in a crash only makes the next load replay more events, so
        // its commit need not wait for the WAL flush.
        sqlx::query("set local synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into snapshots (stream_id, version, schema_version, state) values ($1, $2, $3, $4) \
             on conflict (stream_id, version) \
             do update set schema_version = excluded.schema_version, state = excluded.state, created_at = now()",
        )
        .bind(stream_id)
        .bind(version)
        .bind(schema_version)
        .bind(state.as_bytes())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "delete from snapshots where stream_id = $1 and version < ( \
                 select version from snapshots where stream_id = $1 \
                 order by version desc offset $2 - 1 limit 1)",
        )
        .bind(stream_id)
        .bind(KEPT_SNAPSHOTS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The snapshot with the highest version, if the stream has any.
    ///
    /// A snapshot whose bytes are not JSON answers `Corrupt`: a reader can replay the stream instead.
    pub async fn latest_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let row: Option<SnapshotRow> = sqlx::query_as(
            "select stream_id, version, schema_version, state, created_at from snapshots \
             where stream_id = $1 order by version desc limit 1",
        )
        .bind(stream_id)
        .fetch_optional(self.pool())
        .await?;
        let Some((stream_id, version, schema_version, state, created_at)) = row else {
            return Ok(None);
        };
        let state: Value = serde_json::from_slice(&state).map_err(|e| StoreError::Corrupt {
            stream_id: stream_id.clone(),
            reason: format!("snapshot at version {version} is not JSON: {e}"),
        })?;
        Ok(Some(Snapshot {
            stream_id,
            version,
            schema_version,
            state,
            created_at,
        }))
    }
}
