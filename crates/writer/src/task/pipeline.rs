//! The pipeline of one ledger's batches: once a batch's statement has run (its head row locked, the WAL
//! flush of its commit still to come), the jobs that arrived meanwhile are decided on top of it and sent
//! chained on its head hash, so the next transaction is already waiting for the lock when the commit
//! releases it, and the ledger's deciding overlaps the database's work. A chained batch is answered only
//! after its predecessor's commit (even a batch that appends nothing: its answers rest on the
//! predecessor's state); if the predecessor fails, the chained batch fails its head check and both are
//! decided again against the reloaded ledger.

use std::ops::ControlFlow;
use std::time::Instant;

use tally_domain::Ledger;
use tally_eventstore::AppendResult;
use tokio::sync::{mpsc, oneshot};

use super::decide::{DecidedBatch, answer};
use super::snapshot::Serialised;
use super::{LedgerTask, items, take_waiting};
use crate::commit::CommitFailure;
use crate::writers::{ItemResult, Job};

/// Commands gathered during a statement beyond which they are decided before it ends: below it, deciding
/// is quick next to appending and a larger batch is worth more than the overlap.
const EAGER_ITEMS: usize = 512;

/// A decided batch whose answers wait for its commit, or for its predecessor's when it appends nothing.
pub(super) struct InFlight {
    pub jobs: Vec<Job>,
    /// The ledger's version once this batch is applied.
    pub version: u64,
    pub answers: Vec<Vec<ItemResult>>,
    /// The state with this batch applied, until a chained batch is decided from it.
    pub state: Option<Ledger>,
    /// `state` serialised, to save as a snapshot once this batch is durable.
    pub snapshot: Option<Serialised>,
    /// The head hash this batch was decided after, if known (for a batch that appends nothing, the head a
    /// batch chained on it must find).
    pub decided_on: Option<[u8; 32]>,
    /// `None` when the batch appends nothing.
    pub commit: Option<CommitHandle>,
}

/// What a ledger task hears of its batch's commit.
pub(super) struct CommitHandle {
    pub events: usize,
    pub started: Instant,
    /// The head the batch will leave, once its transaction has announced it; `None` once taken or gone.
    pub announced: Option<oneshot::Receiver<[u8; 32]>>,
    pub appended: oneshot::Receiver<[u8; 32]>,
    pub outcome: oneshot::Receiver<Result<AppendResult, CommitFailure>>,
}

/// Jobs taken from the queue while a batch's statement ran, and decided already if they were many.
#[derive(Default)]
struct Gathered {
    waiting: Vec<Job>,
    decided: Option<DecidedBatch>,
}

impl LedgerTask {
    /// Follows `flight` and every batch chained after it until the queue is empty. Returns the jobs to
    /// decide again after a conflict (the cached state is then dropped); every other job is answered.
    ///
    /// Behind a large batch, jobs that arrive while its statement runs are gathered, and once they are
    /// many (where deciding takes as long as appending) decided at once on its state and sent chained on
    /// the head its transaction announced: the ledger's deciding and PostgreSQL's reading of the next
    /// batch then overlap the inserts of this one instead of alternating with them. Otherwise the next
    /// batch is sent once this batch's statement has run, so that what arrives meanwhile goes together.
    pub(super) async fn pipeline(
        &mut self,
        mut flight: InFlight,
        queue: &mut mpsc::Receiver<Job>,
    ) -> Vec<Job> {
        let mut queue_open = true;
        loop {
            let (head, gathered) = self
                .wait_for_head(&mut flight, queue, &mut queue_open)
                .await;
            let (next, unsent) = self.send_next(&mut flight, head, gathered, queue).await;
            flight = match await_commit(&mut flight).await {
                Ok(()) => match self.committed(flight, next, unsent) {
                    ControlFlow::Continue(chained) => chained,
                    ControlFlow::Break(retry) => return retry,
                },
                Err(failure) => return self.failed(flight.jobs, failure, next, unsent).await,
            };
        }
    }

    /// Waits for the head `flight` leaves behind: the one its transaction announced, for a batch decided
    /// early, else the one its statement reports once it has run (a batch that appends nothing leaves the
    /// head it was decided on). A committer that fails the group, or appends the stream on its own after a
    /// unique violation, reports neither: no chaining. Behind a large batch, the jobs arriving meanwhile
    /// are gathered and, once many, decided.
    async fn wait_for_head(
        &mut self,
        flight: &mut InFlight,
        queue: &mut mpsc::Receiver<Job>,
        queue_open: &mut bool,
    ) -> (Option<[u8; 32]>, Gathered) {
        let mut gathered = Gathered::default();
        // Only behind a large batch: waking for every single command that arrives during a small one
        // costs more than deciding a few dozen commands takes.
        let eager = items(&flight.jobs) >= EAGER_ITEMS;
        let Some(commit) = &mut flight.commit else {
            return (flight.decided_on, gathered);
        };
        // The head this batch has announced (large batches only): a batch decided early is sent on it at
        // once.
        let mut promised = None;
        loop {
            if gathered.decided.is_some()
                && let Some(head) = promised
            {
                return (Some(head), gathered);
            }
            tokio::select! {
                biased;
                head = &mut commit.appended => return (head.ok(), gathered),
                head = async { commit.announced.as_mut()?.await.ok() }, if commit.announced.is_some() => {
                    commit.announced = None;
                    promised = head;
                }
                job = queue.recv(), if eager && *queue_open && gathered.decided.is_none() && flight.state.is_some() => {
                    let Some(job) = job else {
                        *queue_open = false;
                        continue;
                    };
                    self.gather(job, queue, &mut gathered, &mut flight.state, &mut flight.snapshot).await;
                }
            }
        }
    }

    /// Adds `job` and whatever else waits to `gathered`, and decides them on the flight's `state` once
    /// they are many.
    async fn gather(
        &mut self,
        job: Job,
        queue: &mut mpsc::Receiver<Job>,
        gathered: &mut Gathered,
        state: &mut Option<Ledger>,
        snapshot: &mut Option<Serialised>,
    ) {
        gathered.waiting.push(job);
        take_waiting(queue, &mut gathered.waiting, self.config.max_batch_items);
        if items(&gathered.waiting) < EAGER_ITEMS {
            return;
        }
        if let Some(state) = self.take_state(state, snapshot) {
            gathered.decided = self
                .decide(std::mem::take(&mut gathered.waiting), state)
                .await;
        }
    }

    /// Sends the batch chained on `flight`'s `head`: the one decided early, or what waits in the queue now.
    /// Returns it, and the jobs taken from the queue with nothing to chain on (no head), which are decided
    /// again once `flight` has committed.
    async fn send_next(
        &mut self,
        flight: &mut InFlight,
        head: Option<[u8; 32]>,
        gathered: Gathered,
        queue: &mut mpsc::Receiver<Job>,
    ) -> (Option<InFlight>, Vec<Job>) {
        let Gathered {
            mut waiting,
            decided,
        } = gathered;
        let Some(head) = head else {
            let mut unsent = decided.map(|batch| batch.jobs).unwrap_or_default();
            unsent.append(&mut waiting);
            return (None, unsent);
        };
        if let Some(batch) = decided {
            return (self.send(batch, Some(head)).await, Vec::new());
        }
        // Without a state (an early decision took it and failed) the jobs stay queued for the next round
        // rather than being taken with nothing to decide them on.
        if flight.state.is_some() {
            take_waiting(queue, &mut waiting, self.config.max_batch_items);
        }
        if waiting.is_empty() {
            return (None, Vec::new());
        }
        match self.take_state(&mut flight.state, &mut flight.snapshot) {
            Some(state) => (
                self.decide_and_send(waiting, state, Some(head)).await,
                Vec::new(),
            ),
            None => (None, waiting),
        }
    }

    /// After `flight` committed: answers it, then goes on with the batch chained on it, or ends the
    /// pipeline (`Break`) with the jobs to decide again, none once the queue is drained.
    fn committed(
        &mut self,
        mut flight: InFlight,
        next: Option<InFlight>,
        unsent: Vec<Job>,
    ) -> ControlFlow<Vec<Job>, InFlight> {
        self.durable = flight.version;
        answer(flight.jobs, flight.answers);
        if let Some(snapshot) = flight.snapshot.take() {
            self.start_snapshot(snapshot);
        }
        if !unsent.is_empty() {
            // Decided again from this batch's state, or from a reload if an early decision took it.
            self.cached = flight.state.take();
            return ControlFlow::Break(unsent);
        }
        if let Some(chained) = next {
            return ControlFlow::Continue(chained);
        }
        if let Some(state) = flight.state.take() {
            if self.snapshot_due(&state)
                && let Some(snapshot) = self.serialise(&state)
            {
                self.start_snapshot(snapshot);
            }
            self.cached = Some(state);
        }
        ControlFlow::Break(Vec::new())
    }

    /// After the batch of `jobs` failed to commit: whatever was chained on it is resolved before the
    /// ledger is reloaded, so the reload sees it if it did commit (possible only if this batch's fate was
    /// unknown). Returns the jobs to decide again.
    async fn failed(
        &mut self,
        jobs: Vec<Job>,
        failure: CommitFailure,
        next: Option<InFlight>,
        unsent: Vec<Job>,
    ) -> Vec<Job> {
        self.cached = None;
        let mut retry = unsent;
        self.retry_or_fail(jobs, failure, &mut retry);
        let Some(mut chained) = next else {
            return retry;
        };
        match await_commit(&mut chained).await {
            // A chained batch that appended nothing answered from a state that never became durable:
            // decide it again.
            Ok(()) if chained.commit.is_none() => retry.extend(chained.jobs),
            Ok(()) => answer(chained.jobs, chained.answers),
            Err(failure) => self.retry_or_fail(chained.jobs, failure, &mut retry),
        }
        retry
    }
}

/// Waits for a batch's commit. A batch that appends nothing is carried by its predecessor's commit, which
/// the caller has already seen succeed.
async fn await_commit(flight: &mut InFlight) -> Result<(), CommitFailure> {
    let Some(commit) = &mut flight.commit else {
        return Ok(());
    };
    let outcome = (&mut commit.outcome)
        .await
        .unwrap_or_else(|_| Err(CommitFailure::Group("the committer stopped".into())));
    let appended = outcome?;
    metrics::histogram!("tally_append_seconds").record(commit.started.elapsed().as_secs_f64());
    metrics::histogram!("tally_group_commit_events").record(commit.events as f64);
    if let Some(state) = &flight.state {
        debug_assert_eq!(appended.version as u64, state.version);
    }
    Ok(())
}
