//! The per-ledger group-commit writer: every command for a ledger goes through one task that holds the
//! ledger's state, drains all waiting commands, decides them in memory, appends all their events in one
//! transaction and then answers each caller with its own outcome. Shared committers put the ready batches of
//! many ledgers into one transaction, so ledgers with few callers each still share commits.

mod commit;
mod error;
mod load;
mod payload;
mod queue;
mod task;
mod writers;

pub use error::WriteError;
pub use load::load_ledger;
pub use writers::{Accepted, ItemResult, Submission, WriterConfig, Writers};
