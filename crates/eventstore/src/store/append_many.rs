//! Appending to several streams in one transaction ([`EventStore::append_many`]): the writer's group
//! commit across ledgers, with heads announced early for appends chained on them
//! ([`EventStore::append_many_notify`]).

use std::collections::HashSet;

use sqlx::{Postgres, Transaction};

use super::EventStore;
use super::append::{AppendResult, check_batch};
use super::statement::{Appending, call_append};
use crate::error::StoreError;
use crate::event::NewEvent;

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

impl<'a> StreamAppend<'a> {
    fn appending(&self) -> Appending<'a> {
        let mut appending = Appending::new(self.stream_id, self.expected_version, self.events);
        appending.strict = self.expected_head.is_some();
        appending.prev = self.expected_head;
        appending
    }

    /// The refusal of an append whose head precondition only the grouped path can check.
    fn head_unchecked(&self) -> StoreError {
        StoreError::Conflict {
            stream_id: self.stream_id.to_owned(),
            expected: self.expected_version,
            actual: self.expected_version,
        }
    }
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

/// Each stream's outcome, by its index in the caller's appends.
type Outcomes = Vec<Option<Result<AppendResult, StoreError>>>;

/// How a group append's streams are sent: together in one statement, or one by one after it.
struct Plan {
    /// Outcomes known before anything is sent: refusals of the batch itself.
    outcomes: Outcomes,
    /// Sent together, in stream-id order so that concurrent groups lock heads in the same order.
    group: Vec<usize>,
    /// Sent one by one afterwards, in the caller's order: empty batches and streams named again.
    alone: Vec<usize>,
}

impl Plan {
    fn of(appends: &[StreamAppend<'_>]) -> Self {
        let mut plan = Self {
            outcomes: appends.iter().map(|_| None).collect(),
            group: Vec::new(),
            alone: Vec::new(),
        };
        let mut seen = HashSet::new();
        for (i, append) in appends.iter().enumerate() {
            if append.expected_head.is_some()
                && (append.events.is_empty() || seen.contains(append.stream_id))
            {
                plan.outcomes[i] = Some(Err(append.head_unchecked()));
            } else if append.events.is_empty() || !seen.insert(append.stream_id) {
                plan.alone.push(i);
            } else if let Err(e) = check_batch(append.stream_id, append.events) {
                plan.outcomes[i] = Some(Err(e));
            } else {
                plan.group.push(i);
            }
        }
        plan.group.sort_by_key(|&i| appends[i].stream_id);
        plan
    }
}

impl EventStore {
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
        let Plan {
            mut outcomes,
            group,
            mut alone,
        } = Plan::of(appends);
        if !group.is_empty() {
            match self.append_group(appends, &group, &mut progress).await? {
                Some(results) => {
                    for (&i, result) in group.iter().zip(results) {
                        outcomes[i] = Some(result);
                    }
                }
                // A transfer or event id already recorded somewhere in the group: the statement failed as
                // a whole, so append each stream on its own to find the offender and commit the rest.
                None => {
                    alone.extend(group);
                    alone.sort_unstable();
                }
            }
        }
        for i in alone {
            let append = &appends[i];
            outcomes[i] = Some(if append.expected_head.is_some() {
                // A stream of the group that failed as a whole on a unique violation; appending it alone
                // would re-chain it from whatever head it finds, so it is refused as a conflict and the
                // caller decides again (and meets the duplicate id in its state or in the store).
                Err(append.head_unchecked())
            } else {
                self.append(append.stream_id, append.expected_version, append.events)
                    .await
            });
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every stream has an outcome"))
            .collect())
    }

    /// Appends the streams `group` (indexes into `appends`) in one transaction and commits it if any
    /// succeeded. `None` when a unique key refused the statement as a whole (the transaction is then
    /// rolled back and nothing of the group written).
    async fn append_group(
        &self,
        appends: &[StreamAppend<'_>],
        group: &[usize],
        progress: &mut impl FnMut(usize, AppendStage, &Announced),
    ) -> Result<Option<Vec<Result<AppendResult, StoreError>>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut appending: Vec<Appending<'_>> =
            group.iter().map(|&i| appends[i].appending()).collect();
        self.heads.guess(&mut tx, &mut appending).await?;
        let heads = announce(&mut tx, &mut appending).await?;
        for (&i, head) in group.iter().zip(&heads) {
            if let Some(head) = head {
                progress(i, AppendStage::Announced, head);
            }
        }
        match call_append(&mut tx, &mut appending).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        for (&i, stream) in group.iter().zip(&appending) {
            if let Some(Ok(result)) = &stream.outcome {
                let head = Announced {
                    version: result.version,
                    head_hash: result.head_hash,
                };
                progress(i, AppendStage::Inserted, &head);
            }
        }
        if appending.iter().any(|a| matches!(a.outcome, Some(Ok(_)))) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        let results = appending
            .into_iter()
            .map(|stream| {
                let stream_id = stream.stream_id;
                let result = stream.into_result();
                self.heads.remember(stream_id, &result);
                result
            })
            .collect();
        Ok(Some(results))
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
    appends: &mut [Appending<'_>],
) -> Result<Vec<Option<Announced>>, sqlx::Error> {
    let mut heads = Vec::with_capacity(appends.len());
    let mut streams = Vec::new();
    let mut versions = Vec::new();
    for appending in appends.iter_mut() {
        if appending.events.len() < ANNOUNCE_MIN_EVENTS {
            heads.push(None);
            continue;
        }
        appending.chain();
        let head = Announced {
            version: appending.expected + appending.events.len() as i64,
            head_hash: appending.head_after(),
        };
        streams.push(appending.stream_id);
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
