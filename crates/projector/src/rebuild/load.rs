//! One `COPY` per large table for a whole rebuild, on a connection of its own. Every ledger's rows go
//! through it, so the tables load side by side (each on its own backend, hence core) and a table can be
//! indexed as soon as its own load ends, while the others are still loading.

use crate::copy::{HEADER, TRAILER};
use crate::error::ProjectionError;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks of rows queued per table: enough that encoding never waits for a round trip, few enough that
/// a slow load holds back the encoders instead of piling up memory.
const CHUNKS_QUEUED: usize = 4;

/// What an encoder sends its loader.
pub(crate) enum Piece {
    /// Whole rows in binary `COPY` format.
    Rows(Vec<u8>),
    /// The ledger's rows were all sent. A loader whose ledger's sender goes away without this rolls
    /// back, so a rebuild that failed elsewhere leaves no half-loaded table to index.
    End,
}

/// Sends one ledger's rows to a loader.
pub(crate) struct Sink {
    table: &'static str,
    tx: mpsc::Sender<Piece>,
}

impl Sink {
    pub(crate) async fn rows(&self, bytes: Vec<u8>) -> Result<(), ProjectionError> {
        self.tx
            .send(Piece::Rows(bytes))
            .await
            .map_err(|_| ProjectionError::LoadStopped(self.table))
    }

    pub(crate) async fn end(self) -> Result<(), ProjectionError> {
        self.tx
            .send(Piece::End)
            .await
            .map_err(|_| ProjectionError::LoadStopped(self.table))
    }
}

/// A `COPY` into one table, running until every ledger's sink has sent [`Piece::End`].
pub(crate) struct Loader {
    pub(crate) table: &'static str,
    done: JoinHandle<Result<u64, ProjectionError>>,
}

impl Loader {
    /// Starts `statement` (a binary `COPY … FROM STDIN`) on a connection of its own, with one sink per
    /// ledger. Ledgers are loaded in the order of their sinks, each ledger's rows in the order sent:
    /// rows that arrive in an index's order make its build's sort a single pass (PostgreSQL's sort
    /// checks for sorted input first), so ledgers are given in `ledger_id` order.
    pub(crate) fn start(
        pool: &PgPool,
        table: &'static str,
        statement: String,
        ledgers: usize,
    ) -> (Self, Vec<Sink>) {
        let (sinks, receivers): (Vec<_>, Vec<_>) = (0..ledgers)
            .map(|_| {
                let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
                (Sink { table, tx }, rx)
            })
            .unzip();
        let done = tokio::spawn(load(pool.clone(), table, statement, receivers));
        (Self { table, done }, sinks)
    }

    /// Rows loaded and committed, once every ledger's sink has sent [`Piece::End`].
    pub(crate) async fn finish(self) -> Result<u64, ProjectionError> {
        self.done.await?
    }
}

async fn load(
    pool: PgPool,
    table: &'static str,
    statement: String,
    ledgers: Vec<mpsc::Receiver<Piece>>,
) -> Result<u64, ProjectionError> {
    let mut tx = pool.begin().await?;
    let mut copy = tx.copy_in_raw(&statement).await?;
    copy.send(HEADER).await?;
    for mut ledger in ledgers {
        loop {
            match ledger.recv().await {
                Some(Piece::Rows(bytes)) => {
                    copy.send(bytes).await?;
                }
                Some(Piece::End) => break,
                None => {
                    // Dropping the transaction afterwards rolls back whatever was loaded.
                    let _ = copy.abort("rebuild stopped").await;
                    return Err(ProjectionError::LoadStopped(table));
                }
            }
        }
    }
    copy.send(TRAILER).await?;
    let rows = copy.finish().await?;
    tx.commit().await?;
    tracing::debug!(table, rows, "loaded");
    Ok(rows)
}
