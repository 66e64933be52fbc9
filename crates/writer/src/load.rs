//! Loading a ledger's state: the newest usable snapshot, then the events after it.

use crate::error::WriteError;
use crate::payload::decode;
use tally_domain::{Companion, Ledger, LedgerId, TransferId, apply};
use tally_eventstore::{EventStore, MAX_READ_LIMIT, StoreError};
use uuid::Uuid;

/// The shape of `Ledger` that snapshots hold; bump it when `Ledger`'s serialised form changes, so old
/// snapshots are ignored (and the stream replayed) rather than misread. 2: transfer records carry their
/// version, and snapshots hold only pending transfers.
pub const SNAPSHOT_SCHEMA: i32 = 2;

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
    catch_up_to(store, ledger, state, u64::MAX).await
}

/// Applies the events after `state.version` up to version `through`.
async fn catch_up_to(
    store: &EventStore,
    ledger: &LedgerId,
    state: &mut Ledger,
    through: u64,
) -> Result<(), WriteError> {
    let corrupt = |reason: String| WriteError::Corrupt {
        ledger: ledger.to_string(),
        reason,
    };
    while state.version < through {
        let page = store
            .read_stream(ledger.as_str(), state.version as i64, MAX_READ_LIMIT)
            .await?;
        let full = page.len() as i64 == MAX_READ_LIMIT;
        for recorded in page {
            if state.version >= through {
                return Ok(());
            }
            if recorded.version != state.version as i64 + 1 {
                return Err(corrupt(format!(
                    "expected version {}, found {}",
                    state.version + 1,
                    recorded.version
                )));
            }
            let (_, event) = decode(ledger, recorded)?;
            apply(state, &event);
        }
        if !full {
            return Ok(());
        }
    }
    Ok(())
}

/// Brings the transfers `ids` back into `state` from the store (see [`Ledger::recall`]).
pub(crate) async fn recall(
    store: &EventStore,
    ledger: &LedgerId,
    state: &mut Ledger,
    ids: &[TransferId],
) -> Result<(), WriteError> {
    let stream = ledger.as_str();
    let uuids: Vec<Uuid> = ids.iter().map(|t| t.0).collect();
    let mut history = store
        .transfer_history(stream, &uuids, &[])
        .await?
        .into_iter()
        .map(|r| decode(ledger, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut versions = Vec::new();
    let mut created = Vec::new();
    for (version, event) in &history {
        match event.recall_companion(*version) {
            Some(Companion::Version(v)) => versions.push(v as i64),
            Some(Companion::Created(t)) => created.push(t.0),
            None => {}
        }
    }
    if !versions.is_empty() || !created.is_empty() {
        // Fetching a companion by its transfer also brings the events that changed that transfer;
        // `recall` keeps only the records of `ids`, so they do no harm.
        for recorded in store.transfer_history(stream, &created, &versions).await? {
            if history.iter().all(|(v, _)| *v != recorded.version as u64) {
                history.push(decode(ledger, recorded)?);
            }
        }
        history.sort_by_key(|(v, _)| *v);
    }
    state.recall(ids, history);
    restore_legacy_outcomes(store, ledger, state, ids).await
}

/// Events recorded before they stated the balances they left recall a transfer without the answer it was
/// given; a replay of the stream up to the latest such transfer gives those answers back. Slow, and only
/// ever needed for such old events.
async fn restore_legacy_outcomes(
    store: &EventStore,
    ledger: &LedgerId,
    state: &mut Ledger,
    ids: &[TransferId],
) -> Result<(), WriteError> {
    let legacy: Vec<(TransferId, u64)> = ids
        .iter()
        .filter_map(|id| state.transfer(id).map(|r| (*id, r)))
        .filter(|(_, r)| r.outcome.balances.is_empty() && !r.legs.is_empty())
        .map(|(id, r)| (id, r.version))
        .collect();
    let Some(through) = legacy.iter().map(|(_, v)| *v).max() else {
        return Ok(());
    };
    tracing::info!(ledger = %ledger, through, "replaying to answer a retry of an old transfer");
    let mut replay = Ledger::default();
    catch_up_to(store, ledger, &mut replay, through).await?;
    for (id, _) in legacy {
        if let (Some(full), Some(record)) = (replay.transfer(&id), state.transfers.get_mut(&id)) {
            record.outcome = full.outcome.clone();
        }
    }
    Ok(())
}
