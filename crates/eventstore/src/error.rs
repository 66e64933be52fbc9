//! `StoreError`: what an event-store operation can fail with.

use uuid::Uuid;

/// An event-store failure. `Conflict`, `DuplicateTransfer` and `DuplicateEvent` are expected outcomes that
/// callers act on; `Corrupt` means the store needs an operator (run verification); `Database` is anything
/// else Postgres or the connection reported.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the writer expected: someone else appended first. Reload from
    /// `actual` and decide again.
    #[error("stream {stream_id}: expected version {expected}, but it is at {actual}")]
    Conflict {
        stream_id: String,
        expected: i64,
        actual: i64,
    },

    /// The transfer id already took effect in this stream (or appears twice in the batch). Nothing of the
    /// batch was written.
    #[error("stream {stream_id}: transfer {transfer_id} already exists")]
    DuplicateTransfer {
        stream_id: String,
        transfer_id: Uuid,
    },

    /// An event with this id is already recorded (or appears twice in the batch): typically a retry of an
    /// append whose commit succeeded but whose answer was lost. Nothing of the batch was written.
    #[error("event {event_id} already exists")]
    DuplicateEvent { event_id: Uuid },

    /// The append runs in a transaction that started writing before the stream's last appender did.
    /// Accepting it would order the stream's versions differently from the global log; retry the append in
    /// a new transaction.
    #[error(
        "stream {stream_id}: the transaction is older than the stream's last append; retry in a new transaction"
    )]
    StaleTransaction { stream_id: String },

    /// The append runs in a transaction that wrote something else first, without claiming its place in
    /// the log ([`claim_log`](crate::claim_log)): readers of the log could have passed it by. Append
    /// first, or claim before writing.
    #[error("the transaction wrote before it appended events; append first or claim the log first")]
    WroteBeforeAppend,

    /// `read_all` was given a cursor that is not the position of any event.
    #[error("no event at position {position}")]
    UnknownPosition { position: i64 },

    /// The stored data disagrees with itself (for example the stream head is behind its events). Only
    /// writes that bypassed this crate can cause it; `verify_stream` says where.
    #[error("stream {stream_id} is corrupt: {reason}")]
    Corrupt { stream_id: String, reason: String },

    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
