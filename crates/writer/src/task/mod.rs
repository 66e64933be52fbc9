//! One ledger's writer task: drain, decide, append once, answer.

use crate::commit::{CommitFailure, CommitRequest};
use crate::error::WriteError;
use crate::load::{SNAPSHOT_SCHEMA, load_ledger, recall};
use crate::payload::payload;
use crate::writers::{Accepted, ItemResult, Job, Submission, WriterConfig};
use chrono::{DateTime, SubsecRound, Utc};
use std::time::Instant;
use tally_domain::{
    Command, DomainError, Event, Ledger, LedgerId, TransferId, apply, decide_all, decide_at,
};
use tally_eventstore::{AppendResult, EventStore, NewEvent, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// What a ledger task keeps between batches.
struct Ledgers {
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
    suspects: Vec<TransferId>,
}

pub(crate) async fn run(
    store: EventStore,
    ledger: LedgerId,
    config: WriterConfig,
    commits: mpsc::Sender<CommitRequest>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut task = Ledgers {
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
        suspects: Vec::new(),
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
    let mut items: usize = batch.iter().map(|j| j.items.len()).sum();
    while items < max_items {
        match jobs.try_recv() {
            Ok(job) => {
                items += job.items.len();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
}

/// The decisions of one batch before they are durable.
struct Decided {
    state: Ledger,
    events: Vec<NewEvent>,
    answers: Vec<Vec<ItemResult>>,
}

/// Commands gathered during a statement beyond which they are decided before it ends: below it, deciding
/// is quick next to appending and a larger batch is worth more than the overlap.
const EAGER_ITEMS: usize = 512;

/// A batch decided but not yet handed to a committer.
struct Prepared {
    jobs: Vec<Job>,
    /// The ledger's version it was decided on.
    base: u64,
    decided: Decided,
}

/// A decided batch whose answers wait for its commit, or for its predecessor's when it appends nothing.
struct Flight {
    jobs: Vec<Job>,
    /// The ledger's version once this batch is applied.
    version: u64,
    answers: Vec<Vec<ItemResult>>,
    /// The state with this batch applied, until a chained batch is decided from it.
    state: Option<Ledger>,
    /// `state` serialised, to save as a snapshot once this batch is durable.
    snapshot: Option<Serialised>,
    /// The head hash this batch was decided after, if known (for a batch that appends nothing, the head a
    /// batch chained on it must find).
    decided_on: Option<[u8; 32]>,
    /// `None` when the batch appends nothing.
    commit: Option<InCommit>,
}

struct InCommit {
    events: usize,
    started: Instant,
    /// The head the batch will leave, once its transaction has announced it; `None` once taken or gone.
    announced: Option<oneshot::Receiver<[u8; 32]>>,
    appended: oneshot::Receiver<[u8; 32]>,
    outcome: oneshot::Receiver<Result<AppendResult, CommitFailure>>,
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

impl Ledgers {
    /// Decides `jobs` and commits them, pipelined: once a batch's statement has run (its head row locked,
    /// the WAL flush of its commit still to come), the jobs that arrived meanwhile are decided on top of it
    /// and sent chained on its head hash, so the next transaction is already waiting for the lock when the
    /// commit releases it, and the ledger's deciding overlaps the database's work. A chained batch is
    /// answered only after its predecessor's commit (even a batch that appends nothing: its answers rest on
    /// the predecessor's state); if the predecessor fails, the chained batch fails its head check and both
    /// are decided again against the reloaded ledger.
    async fn process(&mut self, mut jobs: Vec<Job>, queue: &mut mpsc::Receiver<Job>) {
        let mut attempt = 0;
        loop {
            let state = match self.cached.take() {
                Some(state) => state,
                None => match load_ledger(&self.store, &self.ledger).await {
                    Ok(state) => {
                        self.snapshot_base = self.snapshot_base.max(state.version);
                        self.durable = state.version;
                        self.trim_at = 0;
                        state
                    }
                    Err(e) => return self.fail(jobs, e),
                },
            };
            let flight = match self.send(jobs, state, None).await {
                Ok(Some(flight)) => flight,
                Ok(None) => return,
                Err((jobs, e)) => return self.fail(jobs, e),
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

    /// Decides `jobs` against `state` and hands the events to a committer, chained on `head` if given.
    /// With nothing to append, a first batch is answered at once (`Ok(None)`); a chained one waits for its
    /// predecessor like any other.
    async fn send(
        &mut self,
        jobs: Vec<Job>,
        state: Ledger,
        head: Option<[u8; 32]>,
    ) -> Result<Option<Flight>, (Vec<Job>, WriteError)> {
        let prepared = self.prepare(jobs, state).await?;
        self.dispatch(prepared, head).await
    }

    /// Decides `jobs` against `state`, without sending anything yet: the pipeline decides the next batch
    /// while its predecessor's statement runs, and sends it once that statement says which head to chain on.
    async fn prepare(
        &mut self,
        jobs: Vec<Job>,
        mut state: Ledger,
    ) -> Result<Prepared, (Vec<Job>, WriteError)> {
        self.trim(&mut state);
        if let Err(e) = self.recall(&mut state, &jobs).await {
            return Err((jobs, e));
        }
        let items: usize = jobs.iter().map(|j| j.items.len()).sum();
        metrics::histogram!("tally_group_commit_items").record(items as f64);
        let base = state.version;
        let at = now();
        let mut decided = decide_batch(&self.ledger, state, &jobs, at);
        if let Err(e) = self.recheck_refusals(&jobs, &mut decided, at).await {
            return Err((jobs, e));
        }
        Ok(Prepared {
            jobs,
            base,
            decided,
        })
    }

    /// Hands a decided batch to a committer, chained on `head` if given (see [`Self::send`]).
    async fn dispatch(
        &mut self,
        prepared: Prepared,
        head: Option<[u8; 32]>,
    ) -> Result<Option<Flight>, (Vec<Job>, WriteError)> {
        let Prepared {
            jobs,
            base,
            decided,
        } = prepared;
        if decided.events.is_empty() {
            if head.is_none() {
                self.cached = Some(decided.state);
                answer(jobs, decided.answers);
                return Ok(None);
            }
            return Ok(Some(Flight {
                jobs,
                version: decided.state.version,
                answers: decided.answers,
                state: Some(decided.state),
                snapshot: None,
                decided_on: head,
                commit: None,
            }));
        }
        let events = decided.events.len();
        let (reply, outcome) = oneshot::channel();
        let (announced_tx, announced) = oneshot::channel();
        let (appended_tx, appended) = oneshot::channel();
        let request = CommitRequest {
            stream_id: self.ledger.as_str().to_owned(),
            expected_version: base as i64,
            expected_head: head,
            events: decided.events,
            announced: Some(announced_tx),
            appended: Some(appended_tx),
            reply,
        };
        if self.commits.send(request).await.is_err() {
            return Err((
                jobs,
                WriteError::Unavailable("the committer stopped".into()),
            ));
        }
        Ok(Some(Flight {
            jobs,
            version: decided.state.version,
            answers: decided.answers,
            state: Some(decided.state),
            snapshot: None,
            decided_on: head,
            commit: Some(InCommit {
                events,
                started: Instant::now(),
                announced: Some(announced),
                appended,
                outcome,
            }),
        }))
    }

    /// Follows `flight` and every batch chained after it until the queue is empty. Returns the jobs to
    /// decide again after a conflict (the cached state is then dropped); every other job is answered.
    ///
    /// Behind a large batch, jobs that arrive while its statement runs are gathered, and once they are
    /// many (where deciding takes as long as appending) decided at once on its state and sent chained on
    /// the head its transaction announced: the ledger's deciding and PostgreSQL's reading of the next
    /// batch then overlap the inserts of this one instead of alternating with them. Otherwise the next
    /// batch is sent once this batch's statement has run, so that what arrives meanwhile goes together.
    async fn pipeline(&mut self, mut flight: Flight, queue: &mut mpsc::Receiver<Job>) -> Vec<Job> {
        let mut open = true;
        loop {
            let mut waiting: Vec<Job> = Vec::new();
            let mut prepared: Option<Prepared> = None;
            // Only behind a large batch: waking for every single command that arrives during a small one
            // costs more than deciding a few dozen commands takes.
            let eager = flight.jobs.iter().map(|j| j.items.len()).sum::<usize>() >= EAGER_ITEMS;
            // The head this batch has announced (large batches only): a batch decided early is sent on it
            // at once.
            let mut promised = None;
            // The head this batch leaves behind: the promised one for a batch decided early, else the one
            // its statement reports once it has run. A committer that fails the group, or appends the
            // stream on its own after a unique violation, says neither: no chaining.
            let head = match &mut flight.commit {
                Some(commit) => loop {
                    if prepared.is_some()
                        && let Some(head) = promised
                    {
                        break Some(head);
                    }
                    tokio::select! {
                        biased;
                        head = &mut commit.appended => break head.ok(),
                        head = async { commit.announced.as_mut()?.await.ok() }, if commit.announced.is_some() => {
                            commit.announced = None;
                            promised = head;
                        }
                        job = queue.recv(), if eager && open && prepared.is_none() && flight.state.is_some() => {
                            let Some(job) = job else {
                                open = false;
                                continue;
                            };
                            waiting.push(job);
                            take_waiting(queue, &mut waiting, self.config.max_batch_items);
                            let items: usize = waiting.iter().map(|j| j.items.len()).sum();
                            if items >= EAGER_ITEMS
                                && let Some(state) = self.take_state(&mut flight.state, &mut flight.snapshot)
                            {
                                match self.prepare(std::mem::take(&mut waiting), state).await {
                                    Ok(ready) => prepared = Some(ready),
                                    Err((jobs, e)) => self.fail(jobs, e),
                                }
                            }
                        }
                    }
                },
                None => flight.decided_on,
            };
            let mut next = None;
            // Taken from the queue but with nothing to chain on: decided again once this batch has settled.
            let mut unsent = Vec::new();
            match (head, prepared) {
                (Some(head), Some(ready)) => match self.dispatch(ready, Some(head)).await {
                    Ok(chained) => next = chained,
                    Err((jobs, e)) => self.fail(jobs, e),
                },
                (Some(head), None) => {
                    // Without a state (an early decision took it and failed) the jobs stay queued for
                    // the next round rather than being taken with nothing to decide them on.
                    if flight.state.is_some() {
                        take_waiting(queue, &mut waiting, self.config.max_batch_items);
                    }
                    if !waiting.is_empty()
                        && let Some(state) =
                            self.take_state(&mut flight.state, &mut flight.snapshot)
                    {
                        match self.send(waiting, state, Some(head)).await {
                            Ok(chained) => next = chained,
                            Err((jobs, e)) => self.fail(jobs, e),
                        }
                    }
                }
                (None, Some(ready)) => unsent = ready.jobs,
                (None, None) => unsent = waiting,
            }
            let outcome = settle(&mut flight).await;
            match outcome {
                Ok(()) => {
                    self.durable = flight.version;
                    answer(flight.jobs, flight.answers);
                    if let Some(snapshot) = flight.snapshot.take() {
                        self.start_snapshot(snapshot);
                    }
                    if !unsent.is_empty() {
                        // Decided again from this batch's state, or from a reload if an early decision
                        // took it.
                        self.cached = flight.state.take();
                        return unsent;
                    }
                    match next {
                        Some(chained) => flight = chained,
                        None => {
                            if let Some(state) = flight.state.take() {
                                if self.snapshot_due(&state)
                                    && let Some(snapshot) = self.serialise(&state)
                                {
                                    self.start_snapshot(snapshot);
                                }
                                self.cached = Some(state);
                            }
                            return Vec::new();
                        }
                    }
                }
                Err(failure) => {
                    // Whatever was chained on this batch is resolved before the ledger is reloaded, so the
                    // reload sees it if it did commit (possible only if this batch's fate was unknown).
                    self.cached = None;
                    let mut retry = unsent;
                    self.sort_out(flight.jobs, failure, &mut retry);
                    if let Some(mut chained) = next {
                        match settle(&mut chained).await {
                            // A chained batch that appended nothing answered from a state that never
                            // became durable: decide it again.
                            Ok(()) if chained.commit.is_none() => retry.extend(chained.jobs),
                            Ok(()) => answer(chained.jobs, chained.answers),
                            Err(failure) => self.sort_out(chained.jobs, failure, &mut retry),
                        }
                    }
                    return retry;
                }
            }
        }
    }

    /// Takes a flight's state to decide the next batch on, serialising it first when a snapshot is due
    /// (saved once the flight is durable).
    fn take_state(
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

    /// After a failed commit: conflicts go back to be decided again, other failures are answered.
    fn sort_out(&mut self, jobs: Vec<Job>, failure: CommitFailure, retry: &mut Vec<Job>) {
        if let CommitFailure::Store(StoreError::DuplicateTransfer { transfer_id, .. }) = &failure {
            self.suspects.push(TransferId(*transfer_id));
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

    /// Forgets all but the most recent `keep_transfers` settled transfers, once the state holds that many
    /// more (at least 64) than after the last trim, so that the pass over every record is paid for by the
    /// records added since; only those whose events are committed, so they can be recalled.
    fn trim(&mut self, state: &mut Ledger) {
        if state.transfers.len() < self.trim_at {
            return;
        }
        let keep = self.config.keep_transfers;
        state.forget_settled(keep, self.durable);
        self.trim_at = state.transfers.len() + keep.max(64);
    }

    /// Recalls from the store the transfers `jobs` name that `state` has forgotten: those they settle or
    /// reverse, and those they create that the store has refused as taken. A new id is not looked up: the
    /// store's unique key refuses it if it is not new, and the batch is then decided again.
    async fn recall(&mut self, state: &mut Ledger, jobs: &[Job]) -> Result<(), WriteError> {
        let suspects = std::mem::take(&mut self.suspects);
        let mut wanted: Vec<TransferId> = Vec::new();
        for item in jobs.iter().flat_map(|j| &j.items) {
            add_missing(state, item.kind.existing_transfers(), &mut wanted);
            if !suspects.is_empty() {
                let created = item.kind.created_transfers().into_iter();
                add_missing(
                    state,
                    created.filter(|id| suspects.contains(id)),
                    &mut wanted,
                );
            }
        }
        self.bring_back(state, &wanted).await
    }

    async fn bring_back(&self, state: &mut Ledger, ids: &[TransferId]) -> Result<(), WriteError> {
        if ids.is_empty() {
            return Ok(());
        }
        metrics::counter!("tally_writer_recalled_transfers_total").increment(ids.len() as u64);
        recall(&self.store, &self.ledger, state, ids).await
    }

    /// With every transfer in memory, a retry is recognised before any rule is checked; a refused command
    /// whose transfer id the state has forgotten may be such a retry (of a transfer the balances would no
    /// longer allow, say). Those ids are recalled, and the commands that named one that exists are decided
    /// again at the end of the batch, as if they had come last: they then answer as retries or conflicts.
    async fn recheck_refusals(
        &mut self,
        jobs: &[Job],
        decided: &mut Decided,
        at: DateTime<Utc>,
    ) -> Result<(), WriteError> {
        let mut wanted: Vec<TransferId> = Vec::new();
        for (job, results) in jobs.iter().zip(&decided.answers) {
            for (item, result) in job.items.iter().zip(results) {
                if result.is_err() {
                    add_missing(&decided.state, item.kind.created_transfers(), &mut wanted);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        self.bring_back(&mut decided.state, &wanted).await?;
        let state = &decided.state;
        let recalled = |item: &Submission| {
            item.kind
                .created_transfers()
                .iter()
                .any(|id| wanted.contains(id) && state.transfer(id).is_some())
        };
        let again: Vec<(usize, Vec<usize>)> = jobs
            .iter()
            .zip(&decided.answers)
            .enumerate()
            .map(|(j, (job, results))| {
                let items = (0..job.items.len())
                    .filter(|&i| results[i].is_err() && recalled(&job.items[i]))
                    .collect();
                (j, items)
            })
            .filter(|(_, items): &(usize, Vec<usize>)| !items.is_empty())
            .collect();
        for (j, items) in again {
            let (job, results) = (&jobs[j], &mut decided.answers[j]);
            let (state, events) = (&mut decided.state, &mut decided.events);
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

    /// A snapshot is due once the events since the last one reach `snapshot_every` and half the state's
    /// size in memory (accounts, pending and recent transfers), so that a ledger of very many accounts
    /// is not forever serialising them. At most one is being saved at a time; one skipped for that is due again after the
    /// next batch.
    fn snapshot_due(&self, state: &Ledger) -> bool {
        let since = state.version.saturating_sub(self.snapshot_base);
        let size = (state.accounts.len() + state.transfers.len()) as u64;
        since >= self.config.snapshot_every.max(size / 2)
            && self.snapshotting.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Serialises the state without its settled transfers, right here on the ledger's task: it is small
    /// (accounts and pending transfers), and the buffer starts at the last snapshot's size plus a half.
    fn serialise(&mut self, state: &Ledger) -> Option<Serialised> {
        let started = std::time::Instant::now();
        let mut buffer = Vec::with_capacity(self.snapshot_len + self.snapshot_len / 2);
        let written = serde_json::to_writer(&mut buffer, &state.without_settled())
            .map_err(|e| e.to_string())
            .and_then(|()| String::from_utf8(buffer).map_err(|e| e.to_string()));
        match written {
            Ok(json) => {
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
            Err(error) => {
                // Only a map with non-string keys could fail, which `Ledger` does not have.
                tracing::warn!(%error, "snapshot not serialised");
                None
            }
        }
    }

    /// Saves a durable state, serialised by the caller, off this task.
    fn start_snapshot(&mut self, snapshot: Serialised) {
        self.snapshot_base = snapshot.version;
        let store = self.store.clone();
        let ledger = self.ledger.clone();
        self.snapshotting = Some(tokio::spawn(async move {
            let version = snapshot.version as i64;
            let started = std::time::Instant::now();
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

/// A ledger state as snapshot JSON, with its version.
struct Serialised {
    version: u64,
    json: String,
}

/// Waits for a batch's commit. A batch that appends nothing is settled by its predecessor's commit, which
/// the caller has already seen succeed.
async fn settle(flight: &mut Flight) -> Result<(), CommitFailure> {
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

/// Postgres keeps microseconds; truncating here makes the events' own timestamps equal to the column.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn decide_batch(ledger: &LedgerId, mut state: Ledger, jobs: &[Job], at: DateTime<Utc>) -> Decided {
    let mut events = Vec::new();
    let answers = jobs
        .iter()
        .map(|job| {
            if job.atomic {
                decide_atomic(ledger, &mut state, &mut events, &job.items, at)
            } else {
                job.items
                    .iter()
                    .map(|item| decide_item(ledger, &mut state, &mut events, item, at))
                    .collect()
            }
        })
        .collect();
    Decided {
        state,
        events,
        answers,
    }
}

/// Decided from the submission in place: the job keeps its commands to decide them again after a
/// conflict, and a copy per command was a good part of the allocations per transfer.
fn decide_item(
    ledger: &LedgerId,
    state: &mut Ledger,
    events: &mut Vec<NewEvent>,
    item: &Submission,
    at: DateTime<Utc>,
) -> ItemResult {
    decide_at(state, &item.kind, at).map(|decided| accept(ledger, state, events, item, decided, at))
}

fn decide_atomic(
    ledger: &LedgerId,
    state: &mut Ledger,
    events: &mut Vec<NewEvent>,
    items: &[Submission],
    at: DateTime<Utc>,
) -> Vec<ItemResult> {
    let commands: Vec<Command> = items
        .iter()
        .map(|s| Command::new(s.kind.clone(), at))
        .collect();
    match decide_all(state, &commands) {
        Ok(per_command) => items
            .iter()
            .zip(per_command)
            .map(|(item, decided)| Ok(accept(ledger, state, events, item, decided, at)))
            .collect(),
        Err((index, error)) => atomic_refusal(items.len(), index, error),
    }
}

/// In a refused atomic batch the refused item carries its rule; every other item is reported as not
/// applied because of it.
fn atomic_refusal(len: usize, index: usize, error: DomainError) -> Vec<ItemResult> {
    (0..len)
        .map(|i| {
            if i == index {
                Err(error.clone())
            } else {
                Err(DomainError::BatchAborted {
                    failed_index: index,
                })
            }
        })
        .collect()
}

fn accept(
    ledger: &LedgerId,
    state: &mut Ledger,
    out: &mut Vec<NewEvent>,
    item: &Submission,
    events: Vec<Event>,
    at: DateTime<Utc>,
) -> Accepted {
    let duplicate = events.is_empty();
    for event in events {
        apply(state, &event);
        out.push(NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            payload: payload(&event),
            metadata: item.metadata.clone(),
            recorded_at: at,
            transfer_id: event.created_transfer().map(|t| t.0),
        });
    }
    Accepted {
        ledger: ledger.clone(),
        version: state.version,
        duplicate,
        outcomes: state.outcomes(&item.kind),
    }
}

fn answer(jobs: Vec<Job>, answers: Vec<Vec<ItemResult>>) {
    for (job, results) in jobs.into_iter().zip(answers) {
        // A caller that gave up waiting has dropped its receiver; its command still took effect.
        let _ = job.reply.send(Ok(results));
    }
}
