//! Projector: consumes ledger events from RabbitMQ and keeps the read models (schema `read`) exact.
//! Each projection has its own quorum queue with a single active consumer; a per-ledger checkpoint is
//! updated in the same transaction as the read models, so duplicates are skipped and gaps are filled
//! from the event store.

mod apply;
mod bulk;
mod consumer;
mod copy;
mod error;
mod indexes;
mod load;
mod project;
pub mod rebuild;
mod rows;
pub mod statistics;

pub use consumer::{Projector, ProjectorConfig};
pub use error::ProjectionError;
pub use project::{
    PROJECTION, StoredEvent, catch_up, catch_up_all, project_batch, project_batches,
};
