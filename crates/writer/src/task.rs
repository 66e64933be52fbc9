//! One ledger's writer task: drain, decide, append once, answer.

use crate::commit::{CommitFailure, CommitRequest};
use crate::error::WriteError;
use crate::load::{SNAPSHOT_SCHEMA, load_ledger};
use crate::writers::{Accepted, ItemResult, Job, Submission, WriterConfig};
use chrono::{DateTime, SubsecRound, Utc};
use std::time::Instant;
use tally_domain::{Command, DomainError, Event, Ledger, LedgerId, apply, decide, decide_all};
use tally_eventstore::{EventStore, NewEvent, StoreError};
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
    /// A snapshot being serialised and saved off this task; at most one at a time.
    snapshotting: Option<JoinHandle<()>>,
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
        let mut items = batch[0].items.len();
        while items < task.config.max_batch_items {
            match jobs.try_recv() {
                Ok(job) => {
                    items += job.items.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        task.process(batch).await;
    }
    // Stopping (idle or shut down) waits for the snapshot in flight, so shutdown leaves nothing behind.
    if let Some(handle) = task.snapshotting.take() {
        let _ = handle.await;
    }
}

/// The decisions of one batch before they are durable.
struct Decided {
    state: Ledger,
    events: Vec<NewEvent>,
    answers: Vec<Vec<ItemResult>>,
}

impl Ledgers {
    async fn process(&mut self, jobs: Vec<Job>) {
        let ledger = &self.ledger;
        let items: usize = jobs.iter().map(|j| j.items.len()).sum();
        metrics::histogram!("tally_group_commit_items").record(items as f64);
        let mut attempt = 0;
        let failure = loop {
            let state = match self.cached.take() {
                Some(state) => state,
                None => match load_ledger(&self.store, ledger).await {
                    Ok(state) => {
                        self.snapshot_base = self.snapshot_base.max(state.version);
                        state
                    }
                    Err(e) => break e,
                },
            };
            let base = state.version;
            let decided = decide_batch(ledger, state, &jobs, now());
            if decided.events.is_empty() {
                self.cached = Some(decided.state);
                answer(jobs, decided.answers);
                return;
            }
            let started = Instant::now();
            let events = decided.events.len();
            let (reply, outcome) = oneshot::channel();
            let request = CommitRequest {
                stream_id: ledger.as_str().to_owned(),
                expected_version: base as i64,
                events: decided.events,
                reply,
            };
            if self.commits.send(request).await.is_err() {
                break WriteError::Unavailable("the committer stopped".into());
            }
            let outcome = outcome
                .await
                .unwrap_or_else(|_| Err(CommitFailure::Group("the committer stopped".into())));
            match outcome {
                Ok(appended) => {
                    metrics::histogram!("tally_append_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::histogram!("tally_group_commit_events").record(events as f64);
                    debug_assert_eq!(appended.version as u64, decided.state.version);
                    let state = decided.state;
                    answer(jobs, decided.answers);
                    self.maybe_snapshot(&state);
                    self.cached = Some(state);
                    return;
                }
                // Another process appended first: reload and decide again against the new tail.
                Err(CommitFailure::Store(
                    StoreError::Conflict { .. }
                    | StoreError::DuplicateTransfer { .. }
                    | StoreError::StaleTransaction { .. },
                )) if attempt < self.config.max_retries => {
                    metrics::counter!("tally_append_conflicts_total").increment(1);
                    attempt += 1;
                }
                // The commit's fate may be unknown (a dropped connection); reload before the next batch so
                // the state reflects whatever the store holds.
                Err(CommitFailure::Store(e)) => break WriteError::from(e),
                Err(CommitFailure::Group(reason)) => break WriteError::Unavailable(reason),
            }
        };
        tracing::warn!(ledger = %ledger, error = %failure, "batch not written");
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

    /// Takes a snapshot once the events since the last one reach `snapshot_every` and half the state's
    /// size (its accounts and transfers). The state grows with the stream (it keeps every transfer), so a
    /// fixed interval would make total snapshot work quadratic in the stream's length; this spacing keeps
    /// it linear (each snapshot is paid for by at least half its size in events) while a load replays at
    /// most about a third of the stream after its snapshot. The copy is taken here; serialising and saving
    /// happen on other threads, so the ledger's next batch does not wait for them.
    fn maybe_snapshot(&mut self, state: &Ledger) {
        let since = state.version.saturating_sub(self.snapshot_base);
        let size = (state.accounts.len() + state.transfers.len()) as u64;
        if since < self.config.snapshot_every.max(size / 2) {
            return;
        }
        if self.snapshotting.as_ref().is_some_and(|h| !h.is_finished()) {
            // The previous one is still being saved; this is due again after the next batch.
            return;
        }
        self.snapshot_base = state.version;
        let store = self.store.clone();
        let ledger = self.ledger.clone();
        let state = state.clone();
        self.snapshotting = Some(tokio::spawn(async move {
            let version = state.version as i64;
            let saved =
                match tokio::task::spawn_blocking(move || serde_json::to_string(&state)).await {
                    Ok(Ok(json)) => store
                        .save_snapshot_json(ledger.as_str(), version, SNAPSHOT_SCHEMA, &json)
                        .await
                        .map_err(|e| e.to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
            // A missing snapshot only makes the next load slower, so it is logged, not fatal.
            if let Err(error) = saved {
                tracing::warn!(ledger = %ledger, %error, "snapshot not saved");
            }
        }));
    }
}

/// Postgres keeps microseconds; truncating here makes the events' own timestamps equal to the column.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn decide_batch(ledger: &LedgerId, mut state: Ledger, jobs: &[Job], at: DateTime<Utc>) -> Decided {
    let mut events = Vec::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        let commands: Vec<Command> = job
            .items
            .iter()
            .map(|s| Command::new(s.kind.clone(), at))
            .collect();
        if job.atomic {
            match decide_all(&state, &commands) {
                Ok(per_command) => {
                    let results = job
                        .items
                        .iter()
                        .zip(per_command)
                        .map(|(item, decided)| {
                            Ok(accept(ledger, &mut state, &mut events, item, decided, at))
                        })
                        .collect();
                    answers.push(results);
                }
                Err((index, error)) => answers.push(atomic_refusal(job.items.len(), index, error)),
            }
        } else {
            let results = job
                .items
                .iter()
                .zip(&commands)
                .map(|(item, command)| {
                    decide(&state, command)
                        .map(|decided| accept(ledger, &mut state, &mut events, item, decided, at))
                })
                .collect();
            answers.push(results);
        }
    }
    Decided {
        state,
        events,
        answers,
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
            payload: event.to_payload(),
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
