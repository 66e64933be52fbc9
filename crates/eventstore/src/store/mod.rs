//! `EventStore`: the handle over the pool. Its operations live by concern: appending to one stream
//! (`append`) or to several in one transaction (`append_many`), the `tally_append` statement they share
//! (`statement`), stream heads (`heads`), reads (`read`), and how database refusals become errors
//! (`errors`).

mod append;
mod append_many;
mod errors;
mod heads;
mod read;
mod statement;

use sqlx::PgPool;

pub use append::{AppendResult, append_in_tx, claim_log};
pub use append_many::{Announced, AppendStage, StreamAppend};
pub use read::{MAX_READ_LIMIT, StreamInfo};

/// The event store over a Postgres pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    /// The heads of streams this store appended to, so an append can chain its events before it has the
    /// head row.
    heads: heads::HeadCache,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            heads: heads::HeadCache::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
