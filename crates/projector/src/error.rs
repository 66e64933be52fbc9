//! What projecting can fail with.

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] tally_eventstore::StoreError),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("ledger {ledger} version {version}: {reason}")]
    Undecodable {
        ledger: String,
        version: i64,
        reason: String,
    },
    #[error("read model of ledger {ledger} disagrees with its events: {reason}")]
    Inconsistent { ledger: String, reason: String },
    /// A rebuild's load of `table` ended before all its rows were sent: the error that stopped it is
    /// reported by whichever side failed first.
    #[error("the load of {0} stopped")]
    LoadStopped(&'static str),
    #[error("rebuild task: {0}")]
    Task(#[from] tokio::task::JoinError),
}
