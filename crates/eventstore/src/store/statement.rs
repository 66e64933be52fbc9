//! The `tally_append` statement (migration 0005) that every append path ends in: each stream's events
//! chained from a head, sent as arrays in one call, and each stream's status read back.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{Postgres, Transaction};

use super::append::AppendResult;
use super::heads::to_hash;
use crate::error::StoreError;
use crate::event::NewEvent;
use crate::hash::{EventFields, GENESIS_HASH, event_hash};

/// One stream's append on its way through `tally_append`.
pub(super) struct Appending<'a> {
    pub stream_id: &'a str,
    pub expected: i64,
    pub events: &'a [NewEvent],
    /// The head hash the events are chained from: the caller's best knowledge, corrected by the database
    /// unless `strict`.
    pub prev: Option<[u8; 32]>,
    /// `prev` is a precondition ([`StreamAppend::expected_head`](super::StreamAppend::expected_head)): a
    /// different head is a conflict.
    pub strict: bool,
    /// The events chained from `prev`, once computed.
    pub chain: Option<Chain>,
    /// Set once the database has answered for this stream.
    pub outcome: Option<Result<AppendResult, StoreError>>,
}

impl<'a> Appending<'a> {
    pub fn new(stream_id: &'a str, expected: i64, events: &'a [NewEvent]) -> Self {
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

    pub fn into_result(self) -> Result<AppendResult, StoreError> {
        self.outcome.unwrap_or_else(|| {
            Err(StoreError::Corrupt {
                stream_id: self.stream_id.to_owned(),
                reason: "the append got no answer for this stream".to_owned(),
            })
        })
    }

    /// Chains the events from the current `prev`, unless they already are: the announcement and each
    /// round of `tally_append` share the hashing.
    pub fn chain(&mut self) {
        let from = self.prev.unwrap_or(GENESIS_HASH);
        if self.chain.as_ref().is_none_or(|c| c.from != from) {
            self.chain = Some(Chain::of(self, from));
        }
    }

    /// The hash the stream's head has once the chained events are appended.
    pub fn head_after(&self) -> [u8; 32] {
        self.chain.as_ref().map_or(GENESIS_HASH, Chain::head)
    }

    fn conflict(&self, actual: i64) -> StoreError {
        StoreError::Conflict {
            stream_id: self.stream_id.to_owned(),
            expected: self.expected,
            actual,
        }
    }

    fn corrupt(&self, reason: &str) -> StoreError {
        StoreError::Corrupt {
            stream_id: self.stream_id.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// Takes the database's answer for this stream: an outcome, or `None` when the head row (locked now)
    /// had another hash than `prev`, to chain from in the next round.
    fn answer(&mut self, row: AppendRow) -> Option<Result<AppendResult, StoreError>> {
        let (_, status, version, head_hash, positions) = row;
        let head_hash = head_hash.map(|h| to_hash(self.stream_id, h));
        match status.as_str() {
            "ok" => Some(match (head_hash, positions) {
                (Some(Ok(head_hash)), Some(positions)) => Ok(AppendResult {
                    version,
                    positions,
                    head_hash,
                }),
                (Some(Err(e)), _) => Err(e),
                _ => Err(self.corrupt("the append answered no head")),
            }),
            "conflict" => Some(Err(self.conflict(version))),
            "stale" => Some(Err(StoreError::StaleTransaction {
                stream_id: self.stream_id.to_owned(),
            })),
            "hash" if self.strict => Some(Err(self.conflict(version))),
            "hash" => match head_hash {
                Some(Ok(actual)) => {
                    self.prev = Some(actual);
                    None
                }
                Some(Err(e)) => Some(Err(e)),
                None => Some(Err(self.corrupt("the append answered no head"))),
            },
            other => Some(Err(self.corrupt(&format!("unknown append status {other}")))),
        }
    }
}

/// A stream's events chained from a head: what each event stores besides its own fields.
pub(super) struct Chain {
    from: [u8; 32],
    metadata: Vec<String>,
    recorded_ats: Vec<DateTime<Utc>>,
    hashes: Vec<[u8; 32]>,
}

impl Chain {
    fn of(appending: &Appending<'_>, from: [u8; 32]) -> Self {
        let n = appending.events.len();
        let mut chain = Self {
            from,
            metadata: Vec::with_capacity(n),
            recorded_ats: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
        };
        let mut prev_hash = from;
        for (version, event) in (appending.expected + 1..).zip(appending.events) {
            let metadata = event.metadata.canonical_json();
            // Postgres keeps microseconds; storing exactly what was hashed keeps the chain verifiable.
            let recorded_at = event.recorded_at.trunc_subsecs(6);
            prev_hash = event_hash(
                &prev_hash,
                &EventFields {
                    stream_id: appending.stream_id,
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

/// One row of `tally_append`: stream index (1-based), status, version, head hash, positions.
type AppendRow = (i32, String, i64, Option<Vec<u8>>, Option<Vec<i64>>);

/// Rounds of `tally_append` for one transaction: the first with the guessed head hashes, the next for the
/// streams whose head differed (locked by then, so their head cannot move again).
const APPEND_ROUNDS: usize = 3;

/// Appends every stream that has no outcome yet with one call of `tally_append` per round; each stream's
/// outcome is set (`Ok`, `Conflict` or `StaleTransaction`). Heads are locked in the order given: callers
/// sort by stream id. A unique violation fails the whole call (and the transaction).
pub(super) async fn call_append(
    tx: &mut Transaction<'_, Postgres>,
    appends: &mut [Appending<'_>],
) -> Result<(), sqlx::Error> {
    for _ in 0..APPEND_ROUNDS {
        let round: Vec<usize> = (0..appends.len())
            .filter(|&i| appends[i].outcome.is_none())
            .collect();
        if round.is_empty() {
            return Ok(());
        }
        for &i in &round {
            appends[i].chain();
        }
        let rows = Columns::of(&round, appends).send(tx).await?;
        for row in rows {
            let Some(&i) = usize::try_from(row.0 - 1).ok().and_then(|n| round.get(n)) else {
                continue;
            };
            appends[i].outcome = appends[i].answer(row);
        }
    }
    for appending in appends.iter_mut().filter(|a| a.outcome.is_none()) {
        appending.outcome = Some(Err(
            appending.corrupt("the stream head kept changing while locked")
        ));
    }
    Ok(())
}

/// The arguments of one `tally_append` call, column by column: per stream, then per event.
struct Columns<'a> {
    streams: Vec<&'a str>,
    expected: Vec<i64>,
    prevs: Vec<Vec<u8>>,
    heads_after: Vec<Vec<u8>>,
    counts: Vec<i32>,
    event_streams: Vec<i32>,
    versions: Vec<i64>,
    event_ids: Vec<uuid::Uuid>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    payloads: Vec<&'a str>,
    metadatas: Vec<&'a str>,
    recorded_ats: Vec<DateTime<Utc>>,
    transfer_ids: Vec<Option<uuid::Uuid>>,
    prev_hashes: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

impl<'a> Columns<'a> {
    /// The columns of the chained streams `round` (indexes into `appends`), numbered 1, 2, … in that order.
    fn of(round: &[usize], appends: &'a [Appending<'_>]) -> Self {
        let streams = round.len();
        let count: usize = round.iter().map(|&i| appends[i].events.len()).sum();
        let mut columns = Self {
            streams: Vec::with_capacity(streams),
            expected: Vec::with_capacity(streams),
            prevs: Vec::with_capacity(streams),
            heads_after: Vec::with_capacity(streams),
            counts: Vec::with_capacity(streams),
            event_streams: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            event_ids: Vec::with_capacity(count),
            event_types: Vec::with_capacity(count),
            schema_versions: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            metadatas: Vec::with_capacity(count),
            recorded_ats: Vec::with_capacity(count),
            transfer_ids: Vec::with_capacity(count),
            prev_hashes: Vec::with_capacity(count),
            hashes: Vec::with_capacity(count),
        };
        for (n, &i) in round.iter().enumerate() {
            let appending = &appends[i];
            if let Some(chain) = &appending.chain {
                // 1-based, as Postgres arrays are.
                columns.push(n as i32 + 1, appending, chain);
            }
        }
        columns
    }

    fn push(&mut self, index: i32, appending: &'a Appending<'_>, chain: &'a Chain) {
        let mut prev_hash = chain.from;
        for (k, event) in appending.events.iter().enumerate() {
            self.event_streams.push(index);
            self.versions.push(appending.expected + k as i64 + 1);
            self.event_ids.push(event.event_id);
            self.event_types.push(event.event_type.as_str());
            self.schema_versions.push(event.schema_version);
            self.payloads.push(event.payload.as_str());
            self.metadatas.push(chain.metadata[k].as_str());
            self.recorded_ats.push(chain.recorded_ats[k]);
            self.transfer_ids.push(event.transfer_id);
            self.prev_hashes.push(prev_hash.to_vec());
            self.hashes.push(chain.hashes[k].to_vec());
            prev_hash = chain.hashes[k];
        }
        self.streams.push(appending.stream_id);
        self.expected.push(appending.expected);
        self.prevs.push(chain.from.to_vec());
        self.heads_after.push(chain.head().to_vec());
        self.counts.push(appending.events.len() as i32);
    }

    async fn send(
        &self,
        tx: &mut Transaction<'_, Postgres>,
    ) -> Result<Vec<AppendRow>, sqlx::Error> {
        sqlx::query_as(
            "select stream_index, status, version, head_hash, positions from tally_append(\
             $1::text[], $2::bigint[], $3::bytea[], $4::bytea[], $5::int[], $6::int[], $7::bigint[], \
             $8::uuid[], $9::text[], $10::int[], $11::text[]::jsonb[], $12::text[]::jsonb[], $13::timestamptz[], \
             $14::uuid[], $15::bytea[], $16::bytea[])",
        )
        .bind(&self.streams)
        .bind(&self.expected)
        .bind(&self.prevs)
        .bind(&self.heads_after)
        .bind(&self.counts)
        .bind(&self.event_streams)
        .bind(&self.versions)
        .bind(&self.event_ids)
        .bind(&self.event_types)
        .bind(&self.schema_versions)
        .bind(&self.payloads)
        .bind(&self.metadatas)
        .bind(&self.recorded_ats)
        .bind(&self.transfer_ids)
        .bind(&self.prev_hashes)
        .bind(&self.hashes)
        .fetch_all(&mut **tx)
        .await
    }
}
