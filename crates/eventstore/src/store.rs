//! `EventStore`: appending to a stream, and reading streams and the global log.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::PgDatabaseError;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{NewEvent, PayloadEvent, PublishableEvent, RecordedEvent};
use crate::hash::{EventFields, GENESIS_HASH, event_hash};

/// The most events one read returns, whatever limit the caller asks for: a page must fit comfortably in
/// memory and in one response. Callers page until a read returns fewer events than they asked for.
pub const MAX_READ_LIMIT: i64 = 10_000;

/// The columns of `events` that make a [`RecordedEvent`], in its field order.
macro_rules! event_columns {
    () => {
        "position, stream_id, version, event_id, event_type, schema_version, payload, metadata, \
         recorded_at, transfer_id, prev_hash, hash"
    };
}

/// A row of the global log as one of its readers wants it.
trait LogRow: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin {
    /// The select list over `events`.
    const COLUMNS: &'static str;
}

impl LogRow for RecordedEvent {
    const COLUMNS: &'static str = event_columns!();
}

impl LogRow for PublishableEvent {
    const COLUMNS: &'static str = "position, stream_id, version, event_id, event_type, schema_version, \
         payload::text as payload, metadata, recorded_at";
}

/// The outcome of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append: the version of its last event.
    pub version: i64,
    /// The global positions of the appended events, in the order they were given.
    pub positions: Vec<i64>,
    /// The hash of the stream's last event, which the next append chains from.
    pub head_hash: [u8; 32],
}

/// The head a transaction has announced it will append to a stream (see
/// [`EventStore::append_many_notify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// The stream's version once the append commits.
    pub version: i64,
    /// The hash of the append's last event.
    pub head_hash: [u8; 32],
}

/// How far a stream's append in [`EventStore::append_many_notify`] has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendStage {
    /// The head is announced; the events are on their way.
    Announced,
    /// The events are inserted and the head row locked; the commit is left.
    Inserted,
}

/// A stream and its current version, for tooling.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamInfo {
    pub stream_id: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// The event store over a Postgres pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    /// The head (version, hash) of streams this store appended to, so an append can chain its events
    /// before it has the head row; shared by clones.
    heads: Arc<Mutex<HashMap<String, Head>>>,
}

/// A stream's version and the hash of its last event.
type Head = (i64, [u8; 32]);

/// One row of `tally_append`: stream index (1-based), status, version, head hash, positions.
type AppendRow = (i32, String, i64, Option<Vec<u8>>, Option<Vec<i64>>);

/// Heads remembered per store: each is ~100 bytes; beyond this the cache starts afresh (a miss costs one
/// query), so memory stays bounded however many streams a process touches.
const MAX_CACHED_HEADS: usize = 100_000;

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            heads: Arc::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends `events` to `stream_id` atomically, if the stream is at `expected_version` (0: the stream
    /// must not exist yet). See [`append_in_tx`] for the checks.
    ///
    /// If the commit itself fails (for example the connection drops), whether the events were recorded is
    /// unknown; retrying the same events then answers `DuplicateEvent` if they were.
    #[tracing::instrument(name = "eventstore.append", skip(self, events), fields(events = events.len()))]
    pub async fn append(
        &self,
        stream_id: &str,
        expected_version: i64,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        if events.is_empty() {
            let mut tx = self.pool.begin().await?;
            let result = append_in_tx(&mut tx, stream_id, expected_version, events).await?;
            tx.commit().await?;
            return Ok(result);
        }
        check_batch(stream_id, events)?;
        let mut tx = self.pool.begin().await?;
        let mut appends = [Pending::new(stream_id, expected_version, events)];
        self.guess_heads(&mut tx, &mut appends).await?;
        call_append(&mut tx, &mut appends)
            .await
            .map_err(|err| insert_error(err, stream_id, events))?;
        let [pending] = appends;
        let result = pending.into_result();
        self.remember(stream_id, &result);
        let result = result?;
        tx.commit().await?;
        tracing::debug!(version = result.version, "appended");
        Ok(result)
    }

    /// Appends to several streams in one transaction (one statement plus the commit): the group commit of
    /// many ledgers. Each stream gets its own outcome, as [`EventStore::append`] would give it; one stream's
    /// `Conflict`, `StaleTransaction`, `DuplicateTransfer` or `DuplicateEvent` leaves the others to commit.
    /// Heads are locked in stream-id order, so concurrent group appends cannot deadlock.
    ///
    /// A stream named twice is appended in a later transaction, in order. The outer error means the
    /// transaction as a whole failed: if it was the commit, whether the appends took effect is unknown.
    #[tracing::instrument(name = "eventstore.append_many", skip_all, fields(streams = appends.len()))]
    pub async fn append_many(
        &self,
        appends: &[StreamAppend<'_>],
    ) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError> {
        self.append_many_notify(appends, |_, _, _| {}).await
    }

    /// [`EventStore::append_many`], telling `progress(index, stage, head)` how each stream of the group
    /// (by its index in `appends`) gets on before the transaction commits:
    ///
    /// - [`AppendStage::Announced`]: the transaction has announced the head it is about to append
    ///   (`tally_announce`, migration 0013), before the events are even sent; only appends of a few hundred
    ///   events or more are announced. An append chained on that head (with
    ///   [`StreamAppend::expected_head`]) can be sent from now on: it waits for this transaction to end,
    ///   and succeeds only if this append committed with exactly that head. The head is a promise: this
    ///   append may still be refused or fail.
    /// - [`AppendStage::Inserted`]: the statement inserted the stream's events and holds its head row;
    ///   only the commit is left.
    ///
    /// Streams appended one by one (named twice, or retried alone after a unique violation) are not
    /// reported.
    pub async fn append_many_notify(
        &self,
        appends: &[StreamAppend<'_>],
        mut progress: impl FnMut(usize, AppendStage, &Announced),
    ) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError> {
        let mut results: Vec<Option<Result<AppendResult, StoreError>>> =
            appends.iter().map(|_| None).collect();
        let mut seen = HashSet::new();
        let mut group = Vec::new();
        let mut later = Vec::new();
        for (i, append) in appends.iter().enumerate() {
            if append.expected_head.is_some()
                && (append.events.is_empty() || seen.contains(append.stream_id))
            {
                // Only the grouped path honours a head precondition; these would take the other one.
                results[i] = Some(Err(StoreError::Conflict {
                    stream_id: append.stream_id.to_owned(),
                    expected: append.expected_version,
                    actual: append.expected_version,
                }));
            } else if append.events.is_empty() || !seen.insert(append.stream_id) {
                later.push(i);
            } else if let Err(e) = check_batch(append.stream_id, append.events) {
                results[i] = Some(Err(e));
            } else {
                group.push(i);
            }
        }
        group.sort_by_key(|&i| appends[i].stream_id);

        if !group.is_empty() {
            let mut tx = self.pool.begin().await?;
            let mut pending: Vec<Pending<'_>> = group
                .iter()
                .map(|&i| {
                    let a = &appends[i];
                    let mut p = Pending::new(a.stream_id, a.expected_version, a.events);
                    p.strict = a.expected_head.is_some();
                    p.prev = a.expected_head;
                    p
                })
                .collect();
            self.guess_heads(&mut tx, &mut pending).await?;
            let heads = announce(&mut tx, &mut pending).await?;
            for (&i, head) in group.iter().zip(&heads) {
                if let Some(head) = head {
                    progress(i, AppendStage::Announced, head);
                }
            }
            match call_append(&mut tx, &mut pending).await {
                Ok(()) => {
                    for (&i, p) in group.iter().zip(&pending) {
                        if let Some(Ok(result)) = &p.outcome {
                            let head = Announced {
                                version: result.version,
                                head_hash: result.head_hash,
                            };
                            progress(i, AppendStage::Inserted, &head);
                        }
                    }
                    let any_ok = pending.iter().any(|p| matches!(p.outcome, Some(Ok(_))));
                    if any_ok {
                        tx.commit().await?;
                    } else {
                        tx.rollback().await?;
                    }
                    for (&i, pending) in group.iter().zip(pending) {
                        let result = pending.into_result();
                        self.remember(appends[i].stream_id, &result);
                        results[i] = Some(result);
                    }
                }
                // A transfer or event id already recorded somewhere in the group: the statement failed as
                // a whole, so append each stream on its own to find the offender and commit the rest.
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    drop(tx);
                    later.extend(group);
                    later.sort_unstable();
                }
                Err(e) => return Err(e.into()),
            }
        }
        for i in later {
            let a = &appends[i];
            if a.expected_head.is_some() {
                // A stream of the group that failed as a whole on a unique violation; appending it alone
                // would re-chain it from whatever head it finds, so it is refused as a conflict and the
                // caller decides again (and meets the duplicate id in its state or in the store).
                results[i] = Some(Err(StoreError::Conflict {
                    stream_id: a.stream_id.to_owned(),
                    expected: a.expected_version,
                    actual: a.expected_version,
                }));
                continue;
            }
            results[i] = Some(self.append(a.stream_id, a.expected_version, a.events).await);
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every stream has an outcome"))
            .collect())
    }

    /// Fills in the head hash each append chains from: the genesis hash for a new stream, the hash this
    /// store last saw at the expected version, or else the committed head (one query for all). A wrong
    /// guess costs a second round under the lock, never a wrong chain: `tally_append` checks it.
    async fn guess_heads(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        appends: &mut [Pending<'_>],
    ) -> Result<(), StoreError> {
        let mut unknown = Vec::new();
        {
            let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
            for pending in appends.iter_mut().filter(|p| p.prev.is_none()) {
                pending.prev = match pending.expected {
                    0 => Some(GENESIS_HASH),
                    expected => heads
                        .get(pending.stream_id)
                        .filter(|(version, _)| *version == expected)
                        .map(|(_, hash)| *hash),
                };
                if pending.prev.is_none() {
                    unknown.push(pending.stream_id);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("select stream_id, head_hash from streams where stream_id = any($1)")
                .bind(&unknown)
                .fetch_all(&mut **tx)
                .await?;
        for pending in appends.iter_mut().filter(|p| p.prev.is_none()) {
            // A missing head makes tally_append answer Conflict; any hash does until then.
            pending.prev = Some(GENESIS_HASH);
            if let Some((stream_id, hash)) = rows.iter().find(|(s, _)| s == pending.stream_id) {
                pending.prev = Some(to_hash(stream_id, hash.clone())?);
            }
        }
        Ok(())
    }

    /// Keeps the head an append produced (or forgets a stream that conflicted), for the next guess.
    fn remember(&self, stream_id: &str, result: &Result<AppendResult, StoreError>) {
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(result) => {
                if heads.len() >= MAX_CACHED_HEADS && !heads.contains_key(stream_id) {
                    heads.clear();
                }
                heads.insert(stream_id.to_owned(), (result.version, result.head_hash));
            }
            Err(_) => {
                heads.remove(stream_id);
            }
        }
    }

    /// Events of `stream_id` with versions above `from_version_exclusive`, in version order, at most
    /// `limit` (capped at [`MAX_READ_LIMIT`]).
    pub async fn read_stream(
        &self,
        stream_id: &str,
        from_version_exclusive: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = sqlx::query_as(concat!(
            "select ",
            event_columns!(),
            " from events where stream_id = $1 and version > $2 order by version limit $3"
        ))
        .bind(stream_id)
        .bind(from_version_exclusive)
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(events)
    }

    /// Like [`EventStore::read_stream`], with only what replaying needs and the payload as JSON text.
    /// Stream versions have no gaps, so the page is the versions `(from, from + limit]`; the query says
    /// so, because with `limit` alone and statistics not yet analysed after a bulk load the planner
    /// chose a bitmap scan and an on-disk sort of the whole rest of the stream for every page.
    pub async fn read_stream_payloads(
        &self,
        stream_id: &str,
        from_version_exclusive: i64,
        limit: i64,
    ) -> Result<Vec<PayloadEvent>, StoreError> {
        let limit = clamp_limit(limit);
        let events = sqlx::query_as(
            "select position, version, event_type, schema_version, payload::text as payload, recorded_at \
             from events where stream_id = $1 and version > $2 and version <= $2 + $3 \
             order by version limit $3",
        )
        .bind(stream_id)
        .bind(from_version_exclusive)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(events)
    }

    /// Events of `stream_id` with versions in `(from_version_exclusive, to_version_inclusive]`, in version
    /// order; at most [`MAX_READ_LIMIT`] of them, so read a longer range in several calls.
    pub async fn read_stream_range(
        &self,
        stream_id: &str,
        from_version_exclusive: i64,
        to_version_inclusive: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = sqlx::query_as(concat!(
            "select ",
            event_columns!(),
            " from events where stream_id = $1 and version > $2 and version <= $3 order by version limit $4"
        ))
        .bind(stream_id)
        .bind(from_version_exclusive)
        .bind(to_version_inclusive)
        .bind(MAX_READ_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        Ok(events)
    }

    /// Events of `stream_id` that create or change any of `transfers` (the index of migration 0011), or
    /// sit at any of `versions`, in version order: what a writer needs to recall transfers it no longer
    /// holds in memory.
    pub async fn transfer_history(
        &self,
        stream_id: &str,
        transfers: &[Uuid],
        versions: &[i64],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = sqlx::query_as(concat!(
            "select ",
            event_columns!(),
            " from events where stream_id = $1 and (transfer_id = any($2) \
               or (event_type in ('PendingTransferPosted', 'PendingTransferVoided', \
                                  'PendingTransferExpired', 'TransferReversed') \
                   and tally_transfer_ref(event_type, payload) = any($2)) \
               or version = any($3)) \
             order by version"
        ))
        .bind(stream_id)
        .bind(transfers)
        .bind(versions)
        .fetch_all(&self.pool)
        .await?;
        Ok(events)
    }

    /// The stream's current version and the hash of its last event, or `None` if it has no events.
    pub async fn stream_head(&self, stream_id: &str) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let head = sqlx::query_as("select version, head_hash from streams where stream_id = $1")
            .bind(stream_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(head)
    }

    /// The global log after the event at `after_position` (0: from the start), at most `limit` events
    /// (capped at [`MAX_READ_LIMIT`]). Pass the position of the last event returned to get the next page.
    ///
    /// Gap-safe: an event is returned only once every transaction that started writing before its own has
    /// finished, so no event can commit later at an earlier place in the log. The log is therefore ordered by
    /// (writing transaction, position), not by position alone: two transactions can take positions in one
    /// order and their transaction ids in the other, and ordering by position would then have to skip one.
    /// Within a page, positions can thus go down where a transaction boundary falls; a stream's events
    /// always come in version order. Only transactions that can add events hold the log back
    /// (`tally_log_horizon`, migration 0007): a long-running append holds it until it ends, other writes
    /// on the server (the projector's, other databases') do not.
    ///
    /// Fails with `UnknownPosition` if `after_position` is not 0 and no event has it.
    pub async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_as(after_position, limit).await
    }

    /// [`EventStore::read_all`] with only what publishing needs, the payloads as JSON text.
    pub async fn read_all_publishable(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<PublishableEvent>, StoreError> {
        self.read_all_as(after_position, limit).await
    }

    async fn read_all_as<T: LogRow>(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<T>, StoreError> {
        let limit = clamp_limit(limit);
        // A statement of its own: the read below then takes a newer snapshot, which sees every writer that
        // ended while the horizon was being decided.
        let horizon: String = sqlx::query_scalar("select tally_log_horizon()::text")
            .fetch_one(&self.pool)
            .await?;
        if after_position <= 0 {
            let sql = format!(
                "select {} from events where tx < $2::xid8 order by tx, position limit $1",
                T::COLUMNS
            );
            let events = sqlx::query_as(&sql)
                .bind(limit)
                .bind(&horizon)
                .fetch_all(&self.pool)
                .await?;
            return Ok(events);
        }
        // The cursor is one event; its (tx, position) is where the page starts. The lateral join lets the
        // page be a range scan of events_log_order starting at that key.
        let sql = format!(
            "select e.* from (select tx, position from events where position = $1) as after_event \
             cross join lateral (select {} from events \
               where (tx, position) > (after_event.tx, after_event.position) \
                 and tx < $3::xid8 \
               order by tx, position limit $2) as e",
            T::COLUMNS
        );
        let events: Vec<T> = sqlx::query_as(&sql)
            .bind(after_position)
            .bind(limit)
            .bind(&horizon)
            .fetch_all(&self.pool)
            .await?;
        if events.is_empty() {
            let known: bool =
                sqlx::query_scalar("select exists (select 1 from events where position = $1)")
                    .bind(after_position)
                    .fetch_one(&self.pool)
                    .await?;
            if !known {
                return Err(StoreError::UnknownPosition {
                    position: after_position,
                });
            }
        }
        Ok(events)
    }

    /// Every stream with its version, ordered by id.
    pub async fn list_streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        let streams =
            sqlx::query_as("select stream_id, version, updated_at from streams order by stream_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(streams)
    }
}

/// Appends `events` to `stream_id` inside the caller's transaction; nothing is visible until the caller
/// commits, and on any error the caller must roll back (dropping the transaction does).
///
/// - `expected_version` is the version the caller's decision was based on, 0 for a stream that must not
///   exist yet; otherwise the answer is `Conflict` with the stream's actual version.
/// - A transfer id may appear once per stream, ever: `DuplicateTransfer` names it, and nothing of the batch
///   is written. Likewise an event id once in the whole store (`DuplicateEvent`).
/// - The stream's head row stays locked until the transaction ends, so appenders of one stream queue.
/// - An empty batch writes nothing and only checks the expected version.
///
/// The caller's transaction must not have written before an earlier append to this stream committed (see
/// `StaleTransaction`); a transaction that begins with the append always satisfies that.
pub async fn append_in_tx(
    tx: &mut Transaction<'_, Postgres>,
    stream_id: &str,
    expected_version: i64,
    events: &[NewEvent],
) -> Result<AppendResult, StoreError> {
    let conflict = |actual| StoreError::Conflict {
        stream_id: stream_id.to_owned(),
        expected: expected_version,
        actual,
    };

    if events.is_empty() {
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as("select version, head_hash from streams where stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&mut **tx)
                .await?;
        let (version, head_hash) = match head {
            Some((version, hash)) => (version, to_hash(stream_id, hash)?),
            None => (0, GENESIS_HASH),
        };
        if version != expected_version {
            return Err(conflict(version));
        }
        return Ok(AppendResult {
            version,
            positions: Vec::new(),
            head_hash,
        });
    }

    check_batch(stream_id, events)?;

    let mut appends = [Pending::new(stream_id, expected_version, events)];
    appends[0].prev = Some(match expected_version {
        0 => GENESIS_HASH,
        _ => peek_head_hash(tx, stream_id).await?.unwrap_or(GENESIS_HASH),
    });
    call_append(tx, &mut appends)
        .await
        .map_err(|err| insert_error(err, stream_id, events))?;
    let [pending] = appends;
    let result = pending.into_result();
    if let Ok(result) = &result {
        tracing::debug!(version = result.version, "appended");
    }
    result
}

/// Claims the transaction's place in the global log before it writes anything else, so it may write other
/// tables first and append events later in the same transaction. Needed only then: an append claims by
/// itself, and a transaction that wrote first without claiming is refused (`WroteBeforeAppend`).
pub async fn claim_log(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("select tally_claim_log()")
        .execute(&mut **tx)
        .await
        .map_err(claim_error)?;
    Ok(())
}

/// One stream's part of an append of several streams in one transaction ([`EventStore::append_many`]).
#[derive(Debug, Clone, Copy)]
pub struct StreamAppend<'a> {
    pub stream_id: &'a str,
    /// As for [`EventStore::append`]: 0 for a stream that must not exist yet.
    pub expected_version: i64,
    pub events: &'a [NewEvent],
    /// The hash of the event at `expected_version` that these events were decided after, when the caller
    /// knows it: a strict precondition. A writer that decides its next batch while the previous one is
    /// still committing chains it on that batch's head; if that batch never commits, another process may
    /// have written the same number of events, and only the hash tells the two apart. A different head
    /// answers `Conflict` (with `actual` equal to `expected`) instead of being chained from.
    pub expected_head: Option<[u8; 32]>,
}

/// A stream's append on its way through `tally_append` (migration 0005).
struct Pending<'a> {
    stream_id: &'a str,
    expected: i64,
    events: &'a [NewEvent],
    /// The head hash the events are chained from: the caller's best knowledge, corrected by the database
    /// unless `strict`.
    prev: Option<[u8; 32]>,
    /// `prev` is a precondition ([`StreamAppend::expected_head`]): a different head is a conflict.
    strict: bool,
    /// The events chained from `prev`, once computed.
    chain: Option<Chain>,
    /// Set once the database has answered for this stream.
    outcome: Option<Result<AppendResult, StoreError>>,
}

impl<'a> Pending<'a> {
    fn new(stream_id: &'a str, expected: i64, events: &'a [NewEvent]) -> Self {
        Self {
            stream_id,
            expected,
            events,
            prev: None,
            strict: false,
            chain: None,
            outcome: None,
        }
    }

    fn into_result(self) -> Result<AppendResult, StoreError> {
        self.outcome.unwrap_or_else(|| {
            Err(StoreError::Corrupt {
                stream_id: self.stream_id.to_owned(),
                reason: "the append got no answer for this stream".to_owned(),
            })
        })
    }
}

/// A stream's events chained from a head: what each event stores besides its own fields.
struct Chain {
    from: [u8; 32],
    metadata: Vec<String>,
    recorded_ats: Vec<DateTime<Utc>>,
    hashes: Vec<[u8; 32]>,
}

impl Chain {
    fn of(pending: &Pending<'_>, from: [u8; 32]) -> Self {
        let n = pending.events.len();
        let mut chain = Self {
            from,
            metadata: Vec::with_capacity(n),
            recorded_ats: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
        };
        let mut prev_hash = from;
        for (version, event) in (pending.expected + 1..).zip(pending.events) {
            let metadata = event.metadata.canonical_json();
            // Postgres keeps microseconds; storing exactly what was hashed keeps the chain verifiable.
            let recorded_at = event.recorded_at.trunc_subsecs(6);
            prev_hash = event_hash(
                &prev_hash,
                &EventFields {
                    stream_id: pending.stream_id,
                    version,
                    event_id: event.event_id,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    payload: event.payload.as_str(),
                    metadata: &metadata,
                    recorded_at,
                    transfer_id: event.transfer_id,
                },
            );
            chain.metadata.push(metadata);
            chain.recorded_ats.push(recorded_at);
            chain.hashes.push(prev_hash);
        }
        chain
    }

    /// The hash the stream's head has after these events.
    fn head(&self) -> [u8; 32] {
        self.hashes.last().copied().unwrap_or(self.from)
    }
}

/// Chains `pending`'s events from its current `prev`, unless they already are: the announcement and each
/// round of `tally_append` share the hashing.
fn chain(pending: &mut Pending<'_>) {
    let from = pending.prev.unwrap_or(GENESIS_HASH);
    if pending.chain.as_ref().is_none_or(|c| c.from != from) {
        pending.chain = Some(Chain::of(pending, from));
    }
}

/// Appends of fewer events are not announced: PostgreSQL takes in a small next batch quickly, and the
/// announcement's round trip would cost more than sending the next batch early saves.
const ANNOUNCE_MIN_EVENTS: usize = 256;

/// Announces the head each large append will leave (`tally_announce`, migration 0013) in the transaction's
/// first statement, which also claims the log and takes the transaction id: an append chained on one of
/// these heads, sent after this returns, waits for this transaction and comes after it in the log.
async fn announce(
    tx: &mut Transaction<'_, Postgres>,
    appends: &mut [Pending<'_>],
) -> Result<Vec<Option<Announced>>, sqlx::Error> {
    let mut heads = Vec::with_capacity(appends.len());
    let mut streams = Vec::new();
    let mut versions = Vec::new();
    for pending in appends.iter_mut() {
        if pending.events.len() < ANNOUNCE_MIN_EVENTS {
            heads.push(None);
            continue;
        }
        chain(pending);
        let head = Announced {
            version: pending.expected + pending.events.len() as i64,
            head_hash: pending.chain.as_ref().map_or(GENESIS_HASH, Chain::head),
        };
        streams.push(pending.stream_id);
        versions.push(head.version);
        heads.push(Some(head));
    }
    if streams.is_empty() {
        return Ok(heads);
    }
    sqlx::query("select tally_announce($1::text[], $2::bigint[])")
        .bind(&streams)
        .bind(&versions)
        .execute(&mut **tx)
        .await?;
    Ok(heads)
}

/// Rounds of `tally_append` for one transaction: the first with the guessed head hashes, the next for the
/// streams whose head differed (locked by then, so their head cannot move again).
const APPEND_ROUNDS: usize = 3;

/// Appends every pending stream that has no outcome yet with one call of `tally_append` per round; each
/// stream's outcome is set (`Ok`, `Conflict` or `StaleTransaction`). Heads are locked in the order given:
/// callers sort by stream id. A unique violation fails the whole call (and the transaction).
async fn call_append(
    tx: &mut Transaction<'_, Postgres>,
    appends: &mut [Pending<'_>],
) -> Result<(), sqlx::Error> {
    for _ in 0..APPEND_ROUNDS {
        let round: Vec<usize> = (0..appends.len())
            .filter(|&i| appends[i].outcome.is_none())
            .collect();
        if round.is_empty() {
            return Ok(());
        }
        let count: usize = round.iter().map(|&i| appends[i].events.len()).sum();
        let mut streams = Vec::with_capacity(round.len());
        let mut expected = Vec::with_capacity(round.len());
        let mut prevs = Vec::with_capacity(round.len());
        let mut heads_after = Vec::with_capacity(round.len());
        let mut counts = Vec::with_capacity(round.len());
        let mut event_streams = Vec::with_capacity(count);
        let mut versions = Vec::with_capacity(count);
        let mut event_ids = Vec::with_capacity(count);
        let mut event_types = Vec::with_capacity(count);
        let mut schema_versions = Vec::with_capacity(count);
        let mut payloads = Vec::with_capacity(count);
        let mut metadatas = Vec::with_capacity(count);
        let mut recorded_ats = Vec::with_capacity(count);
        let mut transfer_ids = Vec::with_capacity(count);
        let mut prev_hashes = Vec::with_capacity(count);
        let mut hashes = Vec::with_capacity(count);
        for &i in &round {
            chain(&mut appends[i]);
        }
        for (n, &i) in round.iter().enumerate() {
            let pending = &appends[i];
            let Some(chain) = &pending.chain else {
                continue;
            };
            let mut prev_hash = chain.from;
            for (k, event) in pending.events.iter().enumerate() {
                // 1-based, as Postgres arrays are.
                event_streams.push(n as i32 + 1);
                versions.push(pending.expected + k as i64 + 1);
                event_ids.push(event.event_id);
                event_types.push(event.event_type.as_str());
                schema_versions.push(event.schema_version);
                payloads.push(event.payload.as_str());
                metadatas.push(chain.metadata[k].as_str());
                recorded_ats.push(chain.recorded_ats[k]);
                transfer_ids.push(event.transfer_id);
                prev_hashes.push(prev_hash.to_vec());
                hashes.push(chain.hashes[k].to_vec());
                prev_hash = chain.hashes[k];
            }
            streams.push(pending.stream_id);
            expected.push(pending.expected);
            prevs.push(chain.from.to_vec());
            heads_after.push(chain.head().to_vec());
            counts.push(pending.events.len() as i32);
        }

        let rows: Vec<AppendRow> = sqlx::query_as(
            "select stream_index, status, version, head_hash, positions from tally_append(\
             $1::text[], $2::bigint[], $3::bytea[], $4::bytea[], $5::int[], $6::int[], $7::bigint[], \
             $8::uuid[], $9::text[], $10::int[], $11::text[]::jsonb[], $12::text[]::jsonb[], $13::timestamptz[], \
             $14::uuid[], $15::bytea[], $16::bytea[])",
        )
        .bind(&streams)
        .bind(&expected)
        .bind(&prevs)
        .bind(&heads_after)
        .bind(&counts)
        .bind(&event_streams)
        .bind(&versions)
        .bind(&event_ids)
        .bind(&event_types)
        .bind(&schema_versions)
        .bind(&payloads)
        .bind(&metadatas)
        .bind(&recorded_ats)
        .bind(&transfer_ids)
        .bind(&prev_hashes)
        .bind(&hashes)
        .fetch_all(&mut **tx)
        .await?;

        for (index, status, version, head_hash, positions) in rows {
            let Some(&i) = usize::try_from(index - 1).ok().and_then(|n| round.get(n)) else {
                continue;
            };
            let pending = &mut appends[i];
            let stream_id = pending.stream_id;
            let corrupt = |reason: &str| StoreError::Corrupt {
                stream_id: stream_id.to_owned(),
                reason: reason.to_owned(),
            };
            pending.outcome = match status.as_str() {
                "ok" => Some(
                    match (head_hash.map(|h| to_hash(stream_id, h)), positions) {
                        (Some(Ok(head_hash)), Some(positions)) => Ok(AppendResult {
                            version,
                            positions,
                            head_hash,
                        }),
                        (Some(Err(e)), _) => Err(e),
                        _ => Err(corrupt("the append answered no head")),
                    },
                ),
                "conflict" => Some(Err(StoreError::Conflict {
                    stream_id: stream_id.to_owned(),
                    expected: pending.expected,
                    actual: version,
                })),
                "stale" => Some(Err(StoreError::StaleTransaction {
                    stream_id: stream_id.to_owned(),
                })),
                "hash" if pending.strict => Some(Err(StoreError::Conflict {
                    stream_id: stream_id.to_owned(),
                    expected: pending.expected,
                    actual: version,
                })),
                // The head row is locked now: chain from its actual hash in the next round.
                "hash" => match head_hash.map(|h| to_hash(stream_id, h)) {
                    Some(Ok(actual)) => {
                        pending.prev = Some(actual);
                        None
                    }
                    Some(Err(e)) => Some(Err(e)),
                    None => Some(Err(corrupt("the append answered no head"))),
                },
                other => Some(Err(corrupt(&format!("unknown append status {other}")))),
            };
        }
    }
    for pending in appends.iter_mut().filter(|p| p.outcome.is_none()) {
        pending.outcome = Some(Err(StoreError::Corrupt {
            stream_id: pending.stream_id.to_owned(),
            reason: "the stream head kept changing while locked".to_owned(),
        }));
    }
    Ok(())
}

/// The stream's head hash as last committed (not locked: `tally_append` checks it under the lock).
async fn peek_head_hash(
    tx: &mut Transaction<'_, Postgres>,
    stream_id: &str,
) -> Result<Option<[u8; 32]>, StoreError> {
    let hash: Option<Vec<u8>> =
        sqlx::query_scalar("select head_hash from streams where stream_id = $1")
            .bind(stream_id)
            .fetch_optional(&mut **tx)
            .await?;
    hash.map(|h| to_hash(stream_id, h)).transpose()
}

/// The errors an append refuses before touching the database: a transfer id or event id twice in the
/// batch. Caught here so the error can name the id; the unique indexes are the backstop.
fn check_batch(stream_id: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for transfer_id in events.iter().filter_map(|event| event.transfer_id) {
        if !seen.insert(transfer_id) {
            return Err(StoreError::DuplicateTransfer {
                stream_id: stream_id.to_owned(),
                transfer_id,
            });
        }
    }
    let mut seen = HashSet::new();
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(StoreError::DuplicateEvent {
                event_id: event.event_id,
            });
        }
    }
    Ok(())
}

fn to_hash(stream_id: &str, bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            reason: format!("head hash is {} bytes long", bytes.len()),
        })
}

/// The refusal raised by `tally_claim_log` (migration 0007; SQLSTATE 55000, which nothing else of ours
/// raises), or any other error as it is.
fn claim_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("55000") => {
            StoreError::WroteBeforeAppend
        }
        _ => StoreError::Database(err),
    }
}

/// Names the unique constraint an insert violated. The offending id is taken from the error's detail
/// (`Key (...)=(...) already exists.`), matched against the batch's own ids, so a localised server message
/// does not matter.
fn insert_error(err: sqlx::Error, stream_id: &str, events: &[NewEvent]) -> StoreError {
    let err = match claim_error(err) {
        StoreError::Database(err) => err,
        claim => return claim,
    };
    let sqlx::Error::Database(db) = &err else {
        return StoreError::Database(err);
    };
    if !db.is_unique_violation() {
        return StoreError::Database(err);
    }
    let detail = db
        .try_downcast_ref::<PgDatabaseError>()
        .and_then(PgDatabaseError::detail)
        .unwrap_or_default();
    let named = |id: &Uuid| detail.contains(&format!("{id})"));
    match db.constraint() {
        Some("events_stream_transfer_key") => {
            match events
                .iter()
                .filter_map(|event| event.transfer_id)
                .find(named)
            {
                Some(transfer_id) => StoreError::DuplicateTransfer {
                    stream_id: stream_id.to_owned(),
                    transfer_id,
                },
                None => StoreError::Database(err),
            }
        }
        Some("events_event_id_key") => {
            match events.iter().map(|event| event.event_id).find(named) {
                Some(event_id) => StoreError::DuplicateEvent { event_id },
                None => StoreError::Database(err),
            }
        }
        // The head row said the slot was free, yet an event occupies it: the head is behind its events.
        Some("events_stream_version_key") => StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            reason: "an event exists beyond the stream head".to_owned(),
        },
        _ => StoreError::Database(err),
    }
}

fn clamp_limit(limit: i64) -> i64 {
    limit.clamp(0, MAX_READ_LIMIT)
}
