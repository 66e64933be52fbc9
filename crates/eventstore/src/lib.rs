//! `tally-eventstore`: the PostgreSQL event store, a raw layer that knows streams and events but no domain.
//!
//! - [`EventStore::append`] writes a batch of events to one stream in one transaction, checked against the
//!   expected stream version (optimistic concurrency) and chained into the stream's hash chain: one call
//!   of the SQL function `tally_append` (migration 0005) plus the commit.
//! - [`EventStore::append_many`] does the same for several streams in one transaction, each with its own
//!   outcome: the writer's group commit across ledgers.
//! - [`EventStore::read_stream`] and [`EventStore::read_stream_range`] read one stream in version order;
//!   [`EventStore::read_all`] follows the global log without ever skipping a late commit.
//! - [`EventStore::verify_stream`] recomputes a stream's hash chain; [`event_hash`] lets tools do the same on
//!   an export.
//! - [`EventStore::save_snapshot`] and [`EventStore::latest_snapshot`] keep folded state for fast starts.
//!
//! The schema lives in the workspace's `migrations/`; [`MIGRATOR`] applies it.

mod canonical;
mod error;
mod event;
mod hash;
mod snapshot;
mod store;
mod verify;

pub use canonical::{CanonicalJson, canonical_json, to_canonical_string};
pub use error::StoreError;
pub use event::{EventMetadata, NewEvent, PayloadEvent, PublishableEvent, RecordedEvent};
pub use hash::{EventFields, GENESIS_HASH, canonical_bytes, event_hash};
pub use snapshot::{KEPT_SNAPSHOTS, Snapshot};
pub use store::{
    Announced, AppendResult, AppendStage, EventStore, MAX_READ_LIMIT, StreamAppend, StreamInfo,
    append_in_tx, claim_log,
};
pub use verify::VerifyReport;

/// The event store's schema migrations (the workspace's `migrations/` folder), embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
