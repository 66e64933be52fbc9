//! Snapshots of the ledger's state: when one is due, serialised on the ledger's task, saved off it.

use std::time::Instant;

use tally_domain::Ledger;

use super::LedgerTask;
use crate::load::SNAPSHOT_SCHEMA;

/// A ledger state as snapshot JSON, with its version.
pub(super) struct Serialised {
    version: u64,
    json: String,
}

impl LedgerTask {
    /// A snapshot is due once the events since the last one reach `snapshot_every` and half the state's
    /// size in memory (accounts, pending and recent transfers), so that a ledger of very many accounts is
    /// not forever serialising them. At most one is being saved at a time; one skipped for that is due
    /// again after the next batch.
    pub(super) fn snapshot_due(&self, state: &Ledger) -> bool {
        let since = state.version.saturating_sub(self.snapshot_base);
        let size = (state.accounts.len() + state.transfers.len()) as u64;
        since >= self.config.snapshot_every.max(size / 2)
            && self.snapshotting.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Takes a flight's state to decide the next batch on, serialising it first when a snapshot is due
    /// (saved once the flight is durable).
    pub(super) fn take_state(
        &mut self,
        state: &mut Option<Ledger>,
        snapshot: &mut Option<Serialised>,
    ) -> Option<Ledger> {
        let state = state.take()?;
        if self.snapshot_due(&state) {
            *snapshot = self.serialise(&state);
        }
        Some(state)
    }

    /// Serialises the state without its settled transfers, right here on the ledger's task: it is small
    /// (accounts and pending transfers), and the buffer starts at the last snapshot's size plus a half.
    pub(super) fn serialise(&mut self, state: &Ledger) -> Option<Serialised> {
        let started = Instant::now();
        let mut buffer = Vec::with_capacity(self.snapshot_len + self.snapshot_len / 2);
        let written = serde_json::to_writer(&mut buffer, &state.without_settled())
            .map_err(|e| e.to_string())
            .and_then(|()| String::from_utf8(buffer).map_err(|e| e.to_string()));
        let json = match written {
            Ok(json) => json,
            Err(error) => {
                // Only a map with non-string keys could fail, which `Ledger` does not have.
                tracing::warn!(%error, "snapshot not serialised");
                return None;
            }
        };
        self.snapshot_len = json.len();
        // Serialising holds up this ledger's commands: worth seeing when latency has a tail.
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("tally_writer_snapshot_serialise_seconds").record(seconds);
        tracing::debug!(
            ledger = %self.ledger,
            version = state.version,
            bytes = json.len(),
            serialise_ms = seconds * 1e3,
            "snapshot serialised"
        );
        Some(Serialised {
            version: state.version,
            json,
        })
    }

    /// Saves a durable state, serialised by the caller, off this task.
    pub(super) fn start_snapshot(&mut self, snapshot: Serialised) {
        self.snapshot_base = snapshot.version;
        let store = self.store.clone();
        let ledger = self.ledger.clone();
        self.snapshotting = Some(tokio::spawn(async move {
            let version = snapshot.version as i64;
            let started = Instant::now();
            let saved = store
                .save_snapshot_json(ledger.as_str(), version, SNAPSHOT_SCHEMA, &snapshot.json)
                .await;
            // A missing snapshot only makes the next load slower, so it is logged, not fatal.
            match saved {
                Ok(()) => tracing::debug!(
                    ledger = %ledger,
                    version,
                    save_ms = started.elapsed().as_secs_f64() * 1e3,
                    "snapshot saved"
                ),
                Err(error) => tracing::warn!(ledger = %ledger, %error, "snapshot not saved"),
            }
        }));
    }
}
