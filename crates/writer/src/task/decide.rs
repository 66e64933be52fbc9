//! Deciding a batch of jobs against the ledger's state: each command's events, applied as they are
//! decided, and each caller's answers.

use chrono::{DateTime, SubsecRound, Utc};
use tally_domain::{Command, DomainError, Event, Ledger, LedgerId, apply, decide_all, decide_at};
use tally_eventstore::NewEvent;
use uuid::Uuid;

use crate::payload::payload;
use crate::writers::{Accepted, ItemResult, Job, Submission};

/// A batch decided but not yet durable.
pub(super) struct DecidedBatch {
    pub jobs: Vec<Job>,
    /// The ledger's version it was decided on.
    pub base: u64,
    /// The state with the batch applied.
    pub state: Ledger,
    pub events: Vec<NewEvent>,
    /// Per job, each command's answer.
    pub answers: Vec<Vec<ItemResult>>,
}

/// Postgres keeps microseconds; truncating here makes the events' own timestamps equal to the column.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(super) fn decide_batch(
    ledger: &LedgerId,
    mut state: Ledger,
    jobs: Vec<Job>,
    at: DateTime<Utc>,
) -> DecidedBatch {
    let base = state.version;
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
    DecidedBatch {
        jobs,
        base,
        state,
        events,
        answers,
    }
}

/// Decided from the submission in place, without a copy of the command: the job keeps its commands to
/// decide them again after a conflict.
pub(super) fn decide_item(
    ledger: &LedgerId,
    state: &mut Ledger,
    events: &mut Vec<NewEvent>,
    item: &Submission,
    at: DateTime<Utc>,
) -> ItemResult {
    decide_at(state, &item.kind, at).map(|decided| accept(ledger, state, events, item, decided, at))
}

pub(super) fn decide_atomic(
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

/// Applies an accepted command's `events` to `state` and stamps them for the store into `out`.
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

pub(super) fn answer(jobs: Vec<Job>, answers: Vec<Vec<ItemResult>>) {
    for (job, results) in jobs.into_iter().zip(answers) {
        // A caller that gave up waiting has dropped its receiver; its command still took effect.
        let _ = job.reply.send(Ok(results));
    }
}
