//! What a submission can fail with, as a whole (a refused command is an item result, not an error).

use tally_eventstore::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The ledger's queue is full: the caller should back off and retry.
    #[error("the ledger's writer is overloaded")]
    Overloaded,
    /// The writer is shutting down or could not reach the store after retries; whether the command took
    /// effect is unknown, and a retry with the same transfer id is safe.
    #[error("the ledger's writer is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored stream cannot be folded (an event does not decode, or versions are not dense).
    #[error("ledger {ledger} cannot be loaded: {reason}")]
    Corrupt { ledger: String, reason: String },
}
