//! Projecting a run of one ledger's events into a read-model schema: exactly once, in version order,
//! with the checkpoint moved in the same transaction. Duplicates are skipped and gaps are filled from the
//! event store, so any delivery order converges to the same tables.

use super::apply::{At, Changes, Moved};
use crate::error::ProjectionError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tally_domain::{Envelope, Event};
use tally_eventstore::{EventStore, MAX_READ_LIMIT, PayloadEvent};
use tally_messaging::ReceivedEvent;

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
    /// The payload as JSON text, parsed once, straight into the event.
    pub payload: Box<str>,
}

impl From<ReceivedEvent> for StoredEvent {
    fn from(e: ReceivedEvent) -> Self {
        Self {
            version: e.version,
            position: e.position,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload.into(),
        }
    }
}

impl From<PayloadEvent> for StoredEvent {
    fn from(e: PayloadEvent) -> Self {
        Self {
            version: e.version,
            position: e.position,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload.into_boxed_str(),
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
    project_batches(pool, store, schema, vec![(ledger.to_owned(), events)]).await
}

/// Applies several runs of events, of one ledger or several, in one transaction: what the consumer
/// does with the messages waiting for it, so that one commit (and its fsync) covers them all. Each
/// ledger is handled as [`project_batch`] would; the checkpoints are locked in ledger order, so
/// concurrent projectors cannot deadlock. Returns how many events were newly applied.
pub async fn project_batches(
    pool: &PgPool,
    store: &EventStore,
    schema: &str,
    batches: Vec<(String, Vec<StoredEvent>)>,
) -> Result<usize, ProjectionError> {
    let mut by_ledger: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
    for (ledger, events) in batches {
        by_ledger.entry(ledger).or_default().extend(events);
    }
    if by_ledger.is_empty() {
        return Ok(0);
    }
    let ledgers: Vec<&str> = by_ledger.keys().map(String::as_str).collect();
    let started = Instant::now();
    // The commit need not wait for its WAL flush: the read models and their checkpoints derive from
    // the store, and a commit lost in a crash takes its checkpoint with it, so the next message's gap
    // fill (or the sweep) projects those events again. Waiting for the flush was most of a small
    // transaction's time on a busy disk. Set with BEGIN, in the same round trip: on two busy cores every
    // round trip of a group is paid in scheduling latency.
    let mut tx = pool
        .begin_with(format!(
            "begin; set local search_path to {}, public; set local synchronous_commit to off",
            quote_ident(schema)
        ))
        .await?;
    let began = started.elapsed();
    // Creates missing checkpoint rows and locks all of them in one statement (the no-op update locks an
    // existing row as `for update` would). The row locks serialise every projector instance (and the
    // catch-up sweep) per ledger; rows are locked in the order they are sorted.
    let checkpoints: HashMap<String, i64> = sqlx::query_as(
        "insert into checkpoints (projection, ledger_id, version, position) \
         select $1, l, 0, 0 from unnest($2::text[]) as l order by l \
         on conflict (projection, ledger_id) do update set version = checkpoints.version \
         returning ledger_id, version",
    )
    .bind(PROJECTION)
    .bind(&ledgers)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let locked = started.elapsed();
    let mut changes = Changes::default();
    let mut moved: Vec<Moved> = Vec::new();
    let mut duplicates = 0u64;
    let (mut in_unseen, mut in_decode, mut in_prefetch) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for (ledger, events) in by_ledger {
        let checkpoint = checkpoints.get(&ledger).copied().unwrap_or(0);
        let mark = Instant::now();
        let pending = unseen(store, &ledger, checkpoint, events).await?;
        in_unseen += mark.elapsed();
        let mark = Instant::now();
        if pending.is_empty() {
            duplicates += 1;
            continue;
        }
        let mut decoded = Vec::with_capacity(pending.len());
        let mut accounts = BTreeSet::new();
        for stored in pending {
            let envelope = Envelope {
                event_type: &stored.event_type,
                schema_version: stored.schema_version,
                recorded_at: stored.recorded_at,
            };
            let event = Event::decode_str(envelope, &stored.payload).map_err(|e| {
                ProjectionError::Undecodable {
                    ledger: ledger.clone(),
                    version: stored.version,
                    reason: e.to_string(),
                }
            })?;
            if let Event::TransferPosted { transfer: t, .. } = &event {
                accounts.extend(t.legs.iter().map(|l| l.account.as_str().to_owned()));
            }
            if let Event::TransferReversed { legs, .. } = &event {
                accounts.extend(legs.iter().map(|l| l.account.as_str().to_owned()));
            }
            let at = At {
                version: stored.version,
                recorded_at: stored.recorded_at,
            };
            decoded.push((at, stored.position, event));
        }
        let accounts: Vec<String> = accounts.into_iter().collect();
        in_decode += mark.elapsed();
        let mark = Instant::now();
        changes.prefetch(&mut tx, &ledger, &accounts).await?;
        in_prefetch += mark.elapsed();
        let mut last = None;
        for (at, position, event) in decoded {
            changes.apply(&mut tx, &ledger, &at, event).await?;
            last = Some((at, position));
        }
        if let Some((at, position)) = last {
            moved.push((ledger, at.version, position, at.recorded_at));
        }
    }
    let applied_at = started.elapsed();
    changes.finish(&mut tx, PROJECTION, &moved).await?;
    let written = started.elapsed();
    tx.commit().await?;
    // Where a group's time goes, round trip by round trip: on busy cores most of it is waiting.
    tracing::debug!(
        begin_ms = began.as_secs_f64() * 1e3,
        lock_ms = (locked - began).as_secs_f64() * 1e3,
        apply_ms = (applied_at - locked).as_secs_f64() * 1e3,
        unseen_ms = in_unseen.as_secs_f64() * 1e3,
        decode_ms = in_decode.as_secs_f64() * 1e3,
        prefetch_ms = in_prefetch.as_secs_f64() * 1e3,
        write_ms = (written - applied_at).as_secs_f64() * 1e3,
        commit_ms = (started.elapsed() - written).as_secs_f64() * 1e3,
        "group timing"
    );
    if duplicates > 0 {
        metrics::counter!("tally_projection_duplicates_total").increment(duplicates);
    }
    let applied: i64 = moved
        .iter()
        .map(|(ledger, version, _, _)| version - checkpoints.get(ledger).copied().unwrap_or(0))
        .sum();
    metrics::counter!("tally_projection_events_applied_total").increment(applied as u64);
    if let Some(newest) = moved.iter().map(|m| m.3).max() {
        let lag = (Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!("tally_projection_lag_seconds").set(lag);
    }
    Ok(applied as usize)
}

/// The events after `checkpoint`, in version order, each once: duplicates dropped, and every gap (a
/// message that went missing or arrives late, before or between the messages of a group) filled from
/// the store.
async fn unseen(
    store: &EventStore,
    ledger: &str,
    checkpoint: i64,
    events: Vec<StoredEvent>,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let mut given: Vec<StoredEvent> = events
        .into_iter()
        .filter(|e| e.version > checkpoint)
        .collect();
    given.sort_by_key(|e| e.version);
    given.dedup_by_key(|e| e.version);
    let mut pending = Vec::with_capacity(given.len());
    let mut expected = checkpoint + 1;
    for stored in given {
        if stored.version > expected {
            metrics::counter!("tally_projection_gaps_total").increment(1);
            while expected < stored.version {
                let page = store
                    .read_stream_payloads(ledger, expected - 1, stored.version - expected)
                    .await?;
                let Some(last) = page.last() else { break };
                expected = last.version + 1;
                pending.extend(page.into_iter().map(StoredEvent::from));
            }
        }
        if stored.version != expected {
            return Err(ProjectionError::Inconsistent {
                ledger: ledger.to_owned(),
                reason: format!("expected version {expected}, got {}", stored.version),
            });
        }
        pending.push(stored);
        expected += 1;
    }
    Ok(pending)
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
        // Payloads as text: they are parsed once, into events, not into values first.
        let page = store
            .read_stream_payloads(ledger, checkpoint.unwrap_or(0), MAX_READ_LIMIT.min(5_000))
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

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
