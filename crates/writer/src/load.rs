//! Loading a ledger's state: the newest usable snapshot, then the events after it.

use crate::error::WriteError;
use tally_domain::{Envelope, Event, Ledger, LedgerId, apply};
use tally_eventstore::{EventStore, MAX_READ_LIMIT, StoreError};

/// The shape of `Ledger` that snapshots hold; bump it when `Ledger`'s serialised form changes, so old
/// snapshots are ignored (and the stream replayed) rather than misread.
pub const SNAPSHOT_SCHEMA: i32 = 1;

/// Folds the ledger's stream into state, starting from its latest snapshot when one is usable.
pub async fn load_ledger(store: &EventStore, ledger: &LedgerId) -> Result<Ledger, WriteError> {
    let stream = ledger.as_str();
    let snapshot = match store.latest_snapshot(stream).await {
        Ok(snapshot) => snapshot,
        // Unreadable bytes are as good as no snapshot: the events are the truth.
        Err(StoreError::Corrupt { reason, .. }) => {
            tracing::warn!(ledger = stream, %reason, "snapshot unusable; replaying the stream");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let mut state = match snapshot {
        Some(s) if s.schema_version == SNAPSHOT_SCHEMA => {
            match serde_json::from_value::<Ledger>(s.state) {
                Ok(state) if state.version == s.version as u64 => state,
                _ => {
                    tracing::warn!(
                        ledger = stream,
                        version = s.version,
                        "snapshot unusable; replaying the stream"
                    );
                    Ledger::default()
                }
            }
        }
        _ => Ledger::default(),
    };
    catch_up(store, ledger, &mut state).await?;
    Ok(state)
}

/// Applies every event after `state.version`.
pub async fn catch_up(
    store: &EventStore,
    ledger: &LedgerId,
    state: &mut Ledger,
) -> Result<(), WriteError> {
    let corrupt = |reason: String| WriteError::Corrupt {
        ledger: ledger.to_string(),
        reason,
    };
    loop {
        let page = store
            .read_stream(ledger.as_str(), state.version as i64, MAX_READ_LIMIT)
            .await?;
        let full = page.len() as i64 == MAX_READ_LIMIT;
        for recorded in page {
            if recorded.version != state.version as i64 + 1 {
                return Err(corrupt(format!(
                    "expected version {}, found {}",
                    state.version + 1,
                    recorded.version
                )));
            }
            let envelope = Envelope {
                event_type: &recorded.event_type,
                schema_version: recorded.schema_version,
                recorded_at: recorded.recorded_at,
            };
            let event = Event::decode(envelope, recorded.payload)
                .map_err(|e| corrupt(format!("version {}: {e}", recorded.version)))?;
            apply(state, &event);
        }
        if !full {
            return Ok(());
        }
    }
}
