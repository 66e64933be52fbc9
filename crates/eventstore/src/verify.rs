//! `verify_stream`: recomputes a stream's hash chain from its first event and reports the first break.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::canonical::canonical_json;
use crate::error::StoreError;
use crate::hash::{EventFields, GENESIS_HASH, event_hash};
use crate::store::EventStore;

/// Events read per round trip while verifying: a stream of any length is checked in bounded memory.
const VERIFY_PAGE: i64 = 1_000;

/// The outcome of verifying a stream: intact, or the first point at which it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every event chains correctly from the genesis hash and the head row agrees with the last one. A
    /// stream with no events is intact at version 0 with the genesis hash.
    Intact { version: i64, head_hash: [u8; 32] },
    /// The event at `version` does not hash to its stored hash, or its `prev_hash` is not its
    /// predecessor's hash: it or its neighbour was altered.
    TamperedEvent { version: i64 },
    /// Versions jump: the event at `expected_version` is missing (deleted, or the head points past the
    /// last event).
    MissingEvent { expected_version: i64 },
    /// The chain is intact but the stream's head row disagrees with its last event, by version or hash
    /// (`head_version` is 0 if there is no head row).
    HeadMismatch {
        head_version: i64,
        last_version: i64,
    },
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }
}

/// An event as stored, with the metadata kept as raw JSON: the hash covers the stored object, so an
/// edited or unreadable metadata value must show up as tampering, not as a decoding error.
#[derive(sqlx::FromRow)]
struct StoredEvent {
    version: i64,
    event_id: Uuid,
    event_type: String,
    schema_version: i32,
    payload: Value,
    metadata: Value,
    recorded_at: DateTime<Utc>,
    transfer_id: Option<Uuid>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl EventStore {
    /// Recomputes the hash chain of `stream_id` from genesis, up to the head as it is when verification
    /// starts (events appended meanwhile are left for the next run).
    #[tracing::instrument(name = "eventstore.verify_stream", skip(self))]
    pub async fn verify_stream(&self, stream_id: &str) -> Result<VerifyReport, StoreError> {
        let head = self.stream_head(stream_id).await?;
        let upper = head.as_ref().map_or(i64::MAX, |(version, _)| *version);
        let mut chain = Chain {
            stream_id,
            prev_hash: GENESIS_HASH,
            last_version: 0,
        };
        loop {
            let page = self
                .verify_page(stream_id, chain.last_version, upper)
                .await?;
            let full_page = i64::try_from(page.len()).is_ok_and(|len| len == VERIFY_PAGE);
            for event in page {
                if let Some(broken) = chain.follow(&event) {
                    return Ok(broken);
                }
            }
            if !full_page {
                break;
            }
        }
        Ok(chain.against_head(head))
    }

    /// The next events of the stream after `after`, up to `upper`, at most [`VERIFY_PAGE`] of them.
    async fn verify_page(
        &self,
        stream_id: &str,
        after: i64,
        upper: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(sqlx::query_as(
            "select version, event_id, event_type, schema_version, payload, metadata, recorded_at, \
                    transfer_id, prev_hash, hash \
             from events where stream_id = $1 and version > $2 and version <= $3 \
             order by version limit $4",
        )
        .bind(stream_id)
        .bind(after)
        .bind(upper)
        .bind(VERIFY_PAGE)
        .fetch_all(self.pool())
        .await?)
    }
}

/// How far a stream's chain has been checked: the last event that chained correctly and its hash.
struct Chain<'a> {
    stream_id: &'a str,
    prev_hash: [u8; 32],
    last_version: i64,
}

impl Chain<'_> {
    /// Checks that `event` follows on from the last one, moving on to it; or answers the break.
    fn follow(&mut self, event: &StoredEvent) -> Option<VerifyReport> {
        if event.version != self.last_version + 1 {
            return Some(VerifyReport::MissingEvent {
                expected_version: self.last_version + 1,
            });
        }
        let recomputed = self.hash_of(event);
        if event.prev_hash != self.prev_hash || event.hash != recomputed {
            return Some(VerifyReport::TamperedEvent {
                version: event.version,
            });
        }
        self.prev_hash = recomputed;
        self.last_version = event.version;
        None
    }

    /// The hash `event` must have after the last checked one.
    fn hash_of(&self, event: &StoredEvent) -> [u8; 32] {
        let payload = canonical_json(&event.payload);
        let metadata = canonical_json(&event.metadata);
        event_hash(
            &self.prev_hash,
            &EventFields {
                stream_id: self.stream_id,
                version: event.version,
                event_id: event.event_id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at: event.recorded_at,
                transfer_id: event.transfer_id,
            },
        )
    }

    /// The report of a chain checked to its end, compared with the stream's head row.
    fn against_head(self, head: Option<(i64, Vec<u8>)>) -> VerifyReport {
        let last_version = self.last_version;
        match head {
            None if last_version == 0 => VerifyReport::Intact {
                version: 0,
                head_hash: GENESIS_HASH,
            },
            None => VerifyReport::HeadMismatch {
                head_version: 0,
                last_version,
            },
            Some((head_version, _)) if head_version > last_version => VerifyReport::MissingEvent {
                expected_version: last_version + 1,
            },
            Some((head_version, head_hash))
                if head_version != last_version || head_hash != self.prev_hash =>
            {
                VerifyReport::HeadMismatch {
                    head_version,
                    last_version,
                }
            }
            Some(_) => VerifyReport::Intact {
                version: last_version,
                head_hash: self.prev_hash,
            },
        }
    }
}
