//! Keeping the transfers in memory bounded: settled transfers are forgotten once committed, and recalled
//! from their events when a command names one again.

use chrono::{DateTime, Utc};
use tally_domain::{Ledger, TransferId};

use super::LedgerTask;
use super::decide::{DecidedBatch, decide_atomic, decide_item};
use crate::error::WriteError;
use crate::load;
use crate::writers::{Job, Submission};

impl LedgerTask {
    /// Forgets all but the most recent `keep_transfers` settled transfers, once the state holds that many
    /// more (at least 64) than after the last trim, so that the pass over every record is paid for by the
    /// records added since; only those whose events are committed, so they can be recalled.
    pub(super) fn trim(&mut self, state: &mut Ledger) {
        if state.transfers.len() < self.trim_at {
            return;
        }
        let keep = self.config.keep_transfers;
        state.forget_settled(keep, self.durable);
        self.trim_at = state.transfers.len() + keep.max(64);
    }

    /// Recalls the transfers `jobs` name that `state` has forgotten: those they settle or reverse, and
    /// those they create that the store has refused as taken. A new id is not looked up: the store's
    /// unique key refuses it if it is not new, and the batch is then decided again.
    pub(super) async fn recall_named(
        &mut self,
        state: &mut Ledger,
        jobs: &[Job],
    ) -> Result<(), WriteError> {
        let taken = std::mem::take(&mut self.taken_ids);
        let mut wanted: Vec<TransferId> = Vec::new();
        for item in jobs.iter().flat_map(|j| &j.items) {
            add_missing(state, item.kind.existing_transfers(), &mut wanted);
            if !taken.is_empty() {
                let created = item.kind.created_transfers().into_iter();
                add_missing(state, created.filter(|id| taken.contains(id)), &mut wanted);
            }
        }
        self.recall(state, &wanted).await
    }

    /// Recalls the transfers `ids` from their events into `state`.
    async fn recall(&self, state: &mut Ledger, ids: &[TransferId]) -> Result<(), WriteError> {
        if ids.is_empty() {
            return Ok(());
        }
        metrics::counter!("tally_writer_recalled_transfers_total").increment(ids.len() as u64);
        load::recall(&self.store, &self.ledger, state, ids).await
    }

    /// With every transfer in memory, a retry is recognised before any rule is checked; a refused command
    /// whose transfer id the state has forgotten may be such a retry (of a transfer the balances would no
    /// longer allow, say). Those ids are recalled, and the commands that named one that exists are decided
    /// again at the end of the batch, as if they had come last: they then answer as retries or conflicts.
    pub(super) async fn recheck_refusals(
        &mut self,
        batch: &mut DecidedBatch,
        at: DateTime<Utc>,
    ) -> Result<(), WriteError> {
        let mut wanted: Vec<TransferId> = Vec::new();
        for (job, results) in batch.jobs.iter().zip(&batch.answers) {
            for (item, result) in job.items.iter().zip(results) {
                if result.is_err() {
                    add_missing(&batch.state, item.kind.created_transfers(), &mut wanted);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        self.recall(&mut batch.state, &wanted).await?;
        let again = refused_recalled(batch, &wanted);
        let DecidedBatch {
            jobs,
            state,
            events,
            answers,
            ..
        } = batch;
        for (j, items) in again {
            let (job, results) = (&jobs[j], &mut answers[j]);
            if job.atomic {
                *results = decide_atomic(&self.ledger, state, events, &job.items, at);
            } else {
                for i in items {
                    results[i] = decide_item(&self.ledger, state, events, &job.items[i], at);
                }
            }
        }
        Ok(())
    }
}

/// The refused commands of `batch`, as (job, its item indexes), that create a transfer of `wanted` the
/// state now holds again.
fn refused_recalled(batch: &DecidedBatch, wanted: &[TransferId]) -> Vec<(usize, Vec<usize>)> {
    let recalled = |item: &Submission| {
        item.kind
            .created_transfers()
            .iter()
            .any(|id| wanted.contains(id) && batch.state.transfer(id).is_some())
    };
    batch
        .jobs
        .iter()
        .zip(&batch.answers)
        .enumerate()
        .map(|(j, (job, results))| {
            let items = (0..job.items.len())
                .filter(|&i| results[i].is_err() && recalled(&job.items[i]))
                .collect();
            (j, items)
        })
        .filter(|(_, items): &(usize, Vec<usize>)| !items.is_empty())
        .collect()
}

/// Adds to `wanted`, once each, the `ids` that `state` does not hold.
fn add_missing(
    state: &Ledger,
    ids: impl IntoIterator<Item = TransferId>,
    wanted: &mut Vec<TransferId>,
) {
    for id in ids {
        if state.transfer(&id).is_none() && !wanted.contains(&id) {
            wanted.push(id);
        }
    }
}
