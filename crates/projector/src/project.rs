//! Projecting a run of one ledger's events into a read-model schema: exactly once, in version order,
//! with the checkpoint moved in the same transaction. Duplicates are skipped and gaps are filled from the
//! event store, so any delivery order converges to the same tables.

use crate::apply::{At, Deltas, apply};
use crate::error::ProjectionError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tally_domain::{Envelope, Event};
use tally_eventstore::{EventStore, MAX_READ_LIMIT, RecordedEvent};
use tally_messaging::PublishedEvent;

/// The name of the projection that keeps every table of the `read` schema.
pub const PROJECTION: &str = "ledger";

/// What projecting needs of a stored event, whether it came from the broker or the store.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub version: i64,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
}

impl From<PublishedEvent> for StoredEvent {
    fn from(e: PublishedEvent) -> Self {
        Self {
            version: e.version,
            position: e.position,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload,
        }
    }
}

impl From<RecordedEvent> for StoredEvent {
    fn from(e: RecordedEvent) -> Self {
        Self {
            version: e.version,
            position: e.position,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload,
        }
    }
}

/// Applies `events` (consecutive events of `ledger`, any of which may already be applied) to the tables
/// in `schema`. Returns how many events were newly applied.
pub async fn project_batch(
    pool: &PgPool,
    store: &EventStore,
    schema: &str,
    ledger: &str,
    events: Vec<StoredEvent>,
) -> Result<usize, ProjectionError> {
    let mut tx = pool.begin().await?;
    // `schema` is one of our own constants (`read`, or a rebuild's scratch schema), never input.
    sqlx::query(&format!("set local search_path to {schema}, public"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into checkpoints (projection, ledger_id, version, position) values ($1, $2, 0, 0) \
         on conflict do nothing",
    )
    .bind(PROJECTION)
    .bind(ledger)
    .execute(&mut *tx)
    .await?;
    // The row lock serialises every projector instance (and the catch-up sweep) per ledger.
    let checkpoint: i64 = sqlx::query_scalar(
        "select version from checkpoints where projection = $1 and ledger_id = $2 for update",
    )
    .bind(PROJECTION)
    .bind(ledger)
    .fetch_one(&mut *tx)
    .await?;
    let mut pending: Vec<StoredEvent> = events
        .into_iter()
        .filter(|e| e.version > checkpoint)
        .collect();
    pending.sort_by_key(|e| e.version);
    let Some(first) = pending.first() else {
        tx.commit().await?;
        metrics::counter!("tally_projection_duplicates_total").increment(1);
        return Ok(0);
    };
    if first.version > checkpoint + 1 {
        // A message went missing or arrived late: read what lies between from the store.
        metrics::counter!("tally_projection_gaps_total").increment(1);
        let mut filled = Vec::new();
        let mut after = checkpoint;
        while after < first.version - 1 {
            let page = store
                .read_stream_range(ledger, after, first.version - 1)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.version;
            filled.extend(page.into_iter().map(StoredEvent::from));
        }
        filled.append(&mut pending);
        pending = filled;
    }
    let mut expected = checkpoint + 1;
    let mut last_position = 0;
    let mut deltas = Deltas::default();
    for stored in &pending {
        if stored.version < expected {
            continue; // the same version twice in one batch
        }
        if stored.version != expected {
            return Err(ProjectionError::Inconsistent {
                ledger: ledger.to_owned(),
                reason: format!("expected version {expected}, got {}", stored.version),
            });
        }
        let envelope = Envelope {
            event_type: &stored.event_type,
            schema_version: stored.schema_version,
            recorded_at: stored.recorded_at,
        };
        let event = Event::decode(envelope, stored.payload.clone()).map_err(|e| {
            ProjectionError::Undecodable {
                ledger: ledger.to_owned(),
                version: stored.version,
                reason: e.to_string(),
            }
        })?;
        let at = At {
            version: stored.version,
            recorded_at: stored.recorded_at,
        };
        apply(&mut tx, &mut deltas, ledger, &at, &event).await?;
        expected += 1;
        last_position = stored.position;
    }
    deltas.flush(&mut tx, ledger).await?;
    let applied = (expected - 1 - checkpoint) as usize;
    sqlx::query("update ledgers set version = $2 where ledger_id = $1")
        .bind(ledger)
        .bind(expected - 1)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update checkpoints set version = $3, position = $4, updated_at = now() \
         where projection = $1 and ledger_id = $2",
    )
    .bind(PROJECTION)
    .bind(ledger)
    .bind(expected - 1)
    .bind(last_position)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("tally_projection_events_applied_total").increment(applied as u64);
    if let Some(last) = pending.last() {
        let lag = (Utc::now() - last.recorded_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!("tally_projection_lag_seconds").set(lag);
    }
    Ok(applied)
}

/// Brings one ledger's projection up to the store's head, in pages.
pub async fn catch_up(
    pool: &PgPool,
    store: &EventStore,
    schema: &str,
    ledger: &str,
) -> Result<u64, ProjectionError> {
    let mut total = 0;
    loop {
        let checkpoint: Option<i64> = sqlx::query_scalar(&format!(
            "select version from {schema}.checkpoints where projection = $1 and ledger_id = $2"
        ))
        .bind(PROJECTION)
        .bind(ledger)
        .fetch_optional(pool)
        .await?;
        let page = store
            .read_stream(ledger, checkpoint.unwrap_or(0), MAX_READ_LIMIT.min(5_000))
            .await?;
        if page.is_empty() {
            return Ok(total);
        }
        total += project_batch(
            pool,
            store,
            schema,
            ledger,
            page.into_iter().map(StoredEvent::from).collect(),
        )
        .await? as u64;
    }
}

/// Brings every ledger up to the store's head; `progress` hears the number of events applied so far.
pub async fn catch_up_all(
    pool: &PgPool,
    store: &EventStore,
    schema: &str,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, ProjectionError> {
    let mut total = 0;
    for stream in store.list_streams().await? {
        total += catch_up(pool, store, schema, &stream.stream_id).await?;
        progress(total);
    }
    Ok(total)
}
