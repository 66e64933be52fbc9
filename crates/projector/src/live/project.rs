//! Projecting a run of one ledger's events into a read-model schema: exactly once, in version order,
//! with the checkpoint moved in the same transaction. Duplicates are skipped and gaps are filled from the
//! event store, so any delivery order converges to the same tables.

use super::apply::{Changes, Moved};
use crate::checkpoints::PROJECTION;
use crate::error::ProjectionError;
use crate::sql::quote_ident;
use crate::stored::{Decoded, StoredEvent, decode};
use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tally_domain::Event;
use tally_eventstore::{EventStore, MAX_READ_LIMIT};

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
    let mut timing = GroupTiming::start();
    // No wait for the WAL flush, since a commit lost in a crash takes its checkpoint with it and its
    // events are projected again from the store; set with BEGIN to spare a round trip.
    let mut tx = pool
        .begin_with(format!(
            "begin; set local search_path to {}, public; set local synchronous_commit to off",
            quote_ident(schema)
        ))
        .await?;
    timing.began = timing.started.elapsed();
    let ledgers: Vec<&str> = by_ledger.keys().map(String::as_str).collect();
    let checkpoints = lock_checkpoints(&mut tx, &ledgers).await?;
    timing.locked = timing.started.elapsed();
    let mut changes = Changes::default();
    let mut moved: Vec<Moved> = Vec::new();
    let mut duplicates = 0u64;
    for (ledger, events) in by_ledger {
        let checkpoint = checkpoints.get(&ledger).copied().unwrap_or(0);
        let mark = Instant::now();
        let pending = unseen(store, &ledger, checkpoint, events).await?;
        timing.unseen += mark.elapsed();
        if pending.is_empty() {
            duplicates += 1;
            continue;
        }
        let run = decode_run(&ledger, pending, &mut timing)?;
        moved.extend(apply_run(&mut changes, &mut tx, ledger, run, &mut timing).await?);
    }
    timing.applied = timing.started.elapsed();
    changes.finish(&mut tx, PROJECTION, &moved).await?;
    timing.written = timing.started.elapsed();
    tx.commit().await?;
    timing.report();
    Ok(record_metrics(&moved, &checkpoints, duplicates))
}

/// Creates missing checkpoint rows and locks all of them in one statement (the no-op update locks an
/// existing row as `for update` would), returning each ledger's checkpoint. The row locks serialise
/// every projector instance (and the catch-up sweep) per ledger; rows are locked in sorted order.
async fn lock_checkpoints(
    conn: &mut PgConnection,
    ledgers: &[&str],
) -> Result<HashMap<String, i64>, ProjectionError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "insert into checkpoints (projection, ledger_id, version, position) \
         select $1, l, 0, 0 from unnest($2::text[]) as l order by l \
         on conflict (projection, ledger_id) do update set version = checkpoints.version \
         returning ledger_id, version",
    )
    .bind(PROJECTION)
    .bind(ledgers)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// One ledger's unseen events, decoded, and the accounts they post to.
struct Run {
    events: Vec<Decoded>,
    accounts: Vec<String>,
}

fn decode_run(
    ledger: &str,
    pending: Vec<StoredEvent>,
    timing: &mut GroupTiming,
) -> Result<Run, ProjectionError> {
    let mark = Instant::now();
    let mut events = Vec::with_capacity(pending.len());
    let mut accounts = BTreeSet::new();
    for stored in pending {
        let decoded = decode(ledger, &stored)?;
        let legs = match &decoded.event {
            Event::TransferPosted { transfer, .. } => &transfer.legs[..],
            Event::TransferReversed { legs, .. } => &legs[..],
            _ => &[],
        };
        accounts.extend(legs.iter().map(|l| l.account.as_str().to_owned()));
        events.push(decoded);
    }
    timing.decode += mark.elapsed();
    let accounts = accounts.into_iter().collect();
    Ok(Run { events, accounts })
}

/// Applies one ledger's run; where its projection moved to, if anywhere.
async fn apply_run(
    changes: &mut Changes,
    conn: &mut PgConnection,
    ledger: String,
    run: Run,
    timing: &mut GroupTiming,
) -> Result<Option<Moved>, ProjectionError> {
    let mark = Instant::now();
    changes.prefetch(conn, &ledger, &run.accounts).await?;
    timing.prefetch += mark.elapsed();
    let mut last = None;
    for Decoded {
        at,
        position,
        event,
    } in run.events
    {
        changes.apply(conn, &ledger, &at, event).await?;
        last = Some((at, position));
    }
    Ok(last.map(|(at, position)| Moved {
        ledger,
        version: at.version,
        position,
        recorded_at: at.recorded_at,
    }))
}

/// Counts what a group applied and skipped, and the projection's lag; returns the events applied.
fn record_metrics(moved: &[Moved], checkpoints: &HashMap<String, i64>, duplicates: u64) -> usize {
    if duplicates > 0 {
        metrics::counter!("tally_projection_duplicates_total").increment(duplicates);
    }
    let applied: i64 = moved
        .iter()
        .map(|m| m.version - checkpoints.get(&m.ledger).copied().unwrap_or(0))
        .sum();
    metrics::counter!("tally_projection_events_applied_total").increment(applied as u64);
    if let Some(newest) = moved.iter().map(|m| m.recorded_at).max() {
        let lag = (Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!("tally_projection_lag_seconds").set(lag);
    }
    applied as usize
}

/// Where a group's time goes, round trip by round trip: on busy cores most of it is waiting.
struct GroupTiming {
    started: Instant,
    began: Duration,
    locked: Duration,
    applied: Duration,
    written: Duration,
    unseen: Duration,
    decode: Duration,
    prefetch: Duration,
}

impl GroupTiming {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            began: Duration::ZERO,
            locked: Duration::ZERO,
            applied: Duration::ZERO,
            written: Duration::ZERO,
            unseen: Duration::ZERO,
            decode: Duration::ZERO,
            prefetch: Duration::ZERO,
        }
    }

    fn report(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            begin_ms = ms(self.began),
            lock_ms = ms(self.locked - self.began),
            apply_ms = ms(self.applied - self.locked),
            unseen_ms = ms(self.unseen),
            decode_ms = ms(self.decode),
            prefetch_ms = ms(self.prefetch),
            write_ms = ms(self.written - self.applied),
            commit_ms = ms(self.started.elapsed() - self.written),
            "group timing"
        );
    }
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
