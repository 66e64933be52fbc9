//! One ledger's writer task: drain, decide, append once, answer. [`LedgerTask`] holds the ledger's state
//! between batches; `pipeline` follows its batches through the committers, `decide` turns commands into
//! events and answers, `recall` keeps the transfers in memory bounded, `snapshot` saves the state now and
//! then.

mod decide;
mod pipeline;
mod recall;
mod snapshot;

use std::time::Instant;

use tally_domain::{Ledger, LedgerId, TransferId};
use tally_eventstore::{EventStore, NewEvent, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::commit::{CommitFailure, CommitRequest};
use crate::error::WriteError;
use crate::load::load_ledger;
use crate::queue;
use crate::writers::{Job, WriterConfig};
use decide::{DecidedBatch, answer, decide_batch, now};
use pipeline::{CommitHandle, InFlight};

/// What one ledger's task keeps between batches.
struct LedgerTask {
    store: EventStore,
    ledger: LedgerId,
    config: WriterConfig,
    commits: mpsc::Sender<CommitRequest>,
    /// The state as of the last commit; `None` when it must be (re)loaded from the store.
    cached: Option<Ledger>,
    /// The version of the last snapshot taken (or of the state when it was loaded).
    snapshot_base: u64,
    /// A snapshot being saved off this task; at most one at a time.
    snapshotting: Option<JoinHandle<()>>,
    /// The length of the last snapshot's JSON: the next one is about as long.
    snapshot_len: usize,
    /// The version through which the state's events are known to be committed: transfers up to it can
    /// be forgotten, since they can be recalled.
    durable: u64,
    /// The number of transfer records at which the state is next trimmed to `keep_transfers`.
    trim_at: usize,
    /// Transfer ids the store refused as already taken: commands creating them are retries (or
    /// conflicts) of transfers this state has forgotten, to recall before deciding them again.
    taken_ids: Vec<TransferId>,
}

pub(crate) async fn run(
    store: EventStore,
    ledger: LedgerId,
    config: WriterConfig,
    commits: mpsc::Sender<CommitRequest>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut task = LedgerTask {
        store,
        ledger,
        config,
        commits,
        cached: None,
        snapshot_base: 0,
        snapshotting: None,
        snapshot_len: 0,
        durable: 0,
        trim_at: 0,
        taken_ids: Vec::new(),
    };
    loop {
        let first = match tokio::time::timeout(task.config.idle_timeout, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_idle) => {
                // Refuse new jobs, then answer those already queued before stopping.
                jobs.close();
                match jobs.recv().await {
                    Some(job) => job,
                    None => break,
                }
            }
        };
        let mut batch = vec![first];
        take_waiting(&mut jobs, &mut batch, task.config.max_batch_items);
        task.process(batch, &mut jobs).await;
    }
    // Stopping (idle or shut down) waits for the snapshot in flight, so shutdown leaves nothing behind.
    if let Some(handle) = task.snapshotting.take() {
        let _ = handle.await;
    }
}

/// Moves the jobs already queued into `batch`, up to `max_items` commands in all.
fn take_waiting(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, max_items: usize) {
    queue::take_waiting(jobs, batch, max_items, |job| job.items.len());
}

/// The number of commands in `jobs`.
fn items(jobs: &[Job]) -> usize {
    jobs.iter().map(|j| j.items.len()).sum()
}

/// Conflicts are re-decided against a reloaded state: another process appended first.
fn retriable(failure: &CommitFailure) -> bool {
    matches!(
        failure,
        CommitFailure::Store(
            StoreError::Conflict { .. }
                | StoreError::DuplicateTransfer { .. }
                | StoreError::StaleTransaction { .. }
        )
    )
}

impl LedgerTask {
    /// Decides `jobs` and commits them, pipelined (see [`LedgerTask::pipeline`]); after a conflict the
    /// jobs not yet answered are decided again against the reloaded ledger, up to `max_retries` times.
    async fn process(&mut self, mut jobs: Vec<Job>, queue: &mut mpsc::Receiver<Job>) {
        let mut attempt = 0;
        loop {
            let state = match self.cached_or_loaded().await {
                Ok(state) => state,
                Err(e) => return self.fail(jobs, e),
            };
            let Some(flight) = self.decide_and_send(jobs, state, None).await else {
                return;
            };
            let retry = self.pipeline(flight, queue).await;
            if retry.is_empty() {
                return;
            }
            if attempt >= self.config.max_retries {
                let e = WriteError::Unavailable("the ledger kept changing under the writer".into());
                return self.fail(retry, e);
            }
            metrics::counter!("tally_append_conflicts_total").increment(1);
            attempt += 1;
            jobs = retry;
        }
    }

    /// The cached state, or the ledger loaded from the store.
    async fn cached_or_loaded(&mut self) -> Result<Ledger, WriteError> {
        if let Some(state) = self.cached.take() {
            return Ok(state);
        }
        let state = load_ledger(&self.store, &self.ledger).await?;
        self.snapshot_base = self.snapshot_base.max(state.version);
        self.durable = state.version;
        self.trim_at = 0;
        Ok(state)
    }

    /// Decides `jobs` against `state` and hands the events to a committer, chained on `head` if given
    /// (see [`LedgerTask::send`]).
    async fn decide_and_send(
        &mut self,
        jobs: Vec<Job>,
        state: Ledger,
        head: Option<[u8; 32]>,
    ) -> Option<InFlight> {
        let batch = self.decide(jobs, state).await?;
        self.send(batch, head).await
    }

    /// Decides `jobs` against `state`, without sending anything yet: the pipeline decides the next batch
    /// while its predecessor's statement runs, and sends it once that statement says which head to chain
    /// on. Jobs whose forgotten transfers cannot be recalled are failed (`None`).
    async fn decide(&mut self, jobs: Vec<Job>, mut state: Ledger) -> Option<DecidedBatch> {
        self.trim(&mut state);
        if let Err(e) = self.recall_named(&mut state, &jobs).await {
            self.fail(jobs, e);
            return None;
        }
        metrics::histogram!("tally_group_commit_items").record(items(&jobs) as f64);
        let at = now();
        let mut batch = decide_batch(&self.ledger, state, jobs, at);
        if let Err(e) = self.recheck_refusals(&mut batch, at).await {
            self.fail(batch.jobs, e);
            return None;
        }
        Some(batch)
    }

    /// Hands a decided batch to a committer, chained on `head` if given. With nothing to append, a first
    /// batch is answered at once (`None`); a chained one waits for its predecessor like any other. If no
    /// committer takes it, its jobs are failed (`None`).
    async fn send(&mut self, batch: DecidedBatch, head: Option<[u8; 32]>) -> Option<InFlight> {
        let DecidedBatch {
            jobs,
            base,
            state,
            events,
            answers,
        } = batch;
        let commit = if events.is_empty() {
            if head.is_none() {
                self.cached = Some(state);
                answer(jobs, answers);
                return None;
            }
            None
        } else {
            let Some(commit) = self.hand_to_committer(base, head, events).await else {
                self.fail(
                    jobs,
                    WriteError::Unavailable("the committer stopped".into()),
                );
                return None;
            };
            Some(commit)
        };
        Some(InFlight {
            jobs,
            version: state.version,
            answers,
            state: Some(state),
            snapshot: None,
            decided_on: head,
            commit,
        })
    }

    /// Sends `events`, decided on version `base` (and on `head`, if given), to the committers; `None` if
    /// they have stopped.
    async fn hand_to_committer(
        &self,
        base: u64,
        head: Option<[u8; 32]>,
        events: Vec<NewEvent>,
    ) -> Option<CommitHandle> {
        let count = events.len();
        let (reply, outcome) = oneshot::channel();
        let (announced_tx, announced) = oneshot::channel();
        let (appended_tx, appended) = oneshot::channel();
        let request = CommitRequest {
            stream_id: self.ledger.as_str().to_owned(),
            expected_version: base as i64,
            expected_head: head,
            events,
            announced: Some(announced_tx),
            appended: Some(appended_tx),
            reply,
        };
        self.commits.send(request).await.ok()?;
        Some(CommitHandle {
            events: count,
            started: Instant::now(),
            announced: Some(announced),
            appended,
            outcome,
        })
    }

    /// After a failed commit: conflicts go back to be decided again, other failures are answered.
    fn retry_or_fail(&mut self, jobs: Vec<Job>, failure: CommitFailure, retry: &mut Vec<Job>) {
        if let CommitFailure::Store(StoreError::DuplicateTransfer { transfer_id, .. }) = &failure {
            self.taken_ids.push(TransferId(*transfer_id));
        }
        if retriable(&failure) {
            retry.extend(jobs);
            return;
        }
        let error = match failure {
            // The commit's fate may be unknown (a dropped connection); the cache is dropped, so the next
            // batch reloads whatever the store holds.
            CommitFailure::Store(e) => WriteError::from(e),
            CommitFailure::Group(reason) => WriteError::Unavailable(reason),
        };
        self.fail(jobs, error);
    }

    fn fail(&self, jobs: Vec<Job>, failure: WriteError) {
        tracing::warn!(ledger = %self.ledger, error = %failure, "batch not written");
        let reason = failure.to_string();
        for job in jobs {
            let _ = job.reply.send(Err(match &failure {
                WriteError::Corrupt { ledger, reason } => WriteError::Corrupt {
                    ledger: ledger.clone(),
                    reason: reason.clone(),
                },
                _ => WriteError::Unavailable(reason.clone()),
            }));
        }
    }
}
