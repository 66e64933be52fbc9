//! `AppState`: what every handler shares — the group-commit writers and the database pool.

use sqlx::PgPool;
use tally_writer::Writers;

/// Cheap to clone: both members are handles.
#[derive(Clone)]
pub struct AppState {
    /// Every command goes through the per-ledger group-commit writer.
    pub writers: Writers,
    /// For readiness and for the rare read the writer does not answer (a replay's original version).
    pub pool: PgPool,
}
