//! The incremental path: the consumer takes messages off the queue, `project` turns a group of them
//! into one transaction, and `apply` says what each event changes in the read models.

mod apply;
mod consumer;
mod project;

pub use consumer::{Projector, ProjectorConfig};
pub use project::{catch_up, catch_up_all, project_batch, project_batches};
