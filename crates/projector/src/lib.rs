//! Projector: consumes ledger events from RabbitMQ and keeps the read models (schema `read`) exact.
//! Each projection has its own quorum queue with a single active consumer; a per-ledger checkpoint is
//! updated in the same transaction as the read models, so duplicates are skipped and gaps are filled
//! from the event store.
//!
//! `live/` is the incremental path (consume, project a group, apply each event); `rebuild/` is the
//! blue/green rebuild (bulk fold, `COPY` loads, index builds, swap); what both share sits here.

mod checkpoints;
mod copy;
mod error;
mod live;
pub mod rebuild;
mod rows;
mod sql;
pub mod statistics;
mod stored;

pub use checkpoints::{LedgerStatus, PROJECTION};
pub use error::ProjectionError;
pub use live::{
    Projector, ProjectorConfig, catch_up, catch_up_all, project_batch, project_batches,
};
pub use stored::StoredEvent;
