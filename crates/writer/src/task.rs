//! One ledger's writer task: drain, decide, append once, answer.

use crate::error::WriteError;
use crate::load::{SNAPSHOT_SCHEMA, load_ledger};
use crate::writers::{Accepted, ItemResult, Job, Submission, WriterConfig};
use chrono::{DateTime, SubsecRound, Utc};
use std::time::Instant;
use tally_domain::{Command, DomainError, Event, Ledger, LedgerId, apply, decide, decide_all};
use tally_eventstore::{EventStore, NewEvent, StoreError};
use tokio::sync::mpsc;
use uuid::Uuid;

pub(crate) async fn run(
    store: EventStore,
    ledger: LedgerId,
    config: WriterConfig,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut state: Option<Ledger> = None;
    loop {
        let first = match tokio::time::timeout(config.idle_timeout, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_idle) => {
                // Refuse new jobs, then answer those already queued before stopping.
                jobs.close();
                match jobs.recv().await {
                    Some(job) => job,
                    None => return,
                }
            }
        };
        let mut batch = vec![first];
        let mut items = batch[0].items.len();
        while items < config.max_batch_items {
            match jobs.try_recv() {
                Ok(job) => {
                    items += job.items.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        process(&store, &ledger, &config, &mut state, batch).await;
    }
}

/// The decisions of one batch before they are durable.
struct Decided {
    state: Ledger,
    events: Vec<NewEvent>,
    answers: Vec<Vec<ItemResult>>,
}

async fn process(
    store: &EventStore,
    ledger: &LedgerId,
    config: &WriterConfig,
    cached: &mut Option<Ledger>,
    jobs: Vec<Job>,
) {
    let items: usize = jobs.iter().map(|j| j.items.len()).sum();
    metrics::histogram!("tally_group_commit_items").record(items as f64);
    let mut attempt = 0;
    let failure = loop {
        let state = match cached.take() {
            Some(state) => state,
            None => match load_ledger(store, ledger).await {
                Ok(state) => state,
                Err(e) => break e,
            },
        };
        let base = state.version;
        let decided = decide_batch(ledger, state, &jobs, now());
        if decided.events.is_empty() {
            *cached = Some(decided.state);
            answer(jobs, decided.answers);
            return;
        }
        let started = Instant::now();
        match store
            .append(ledger.as_str(), base as i64, &decided.events)
            .await
        {
            Ok(appended) => {
                metrics::histogram!("tally_append_seconds").record(started.elapsed().as_secs_f64());
                metrics::histogram!("tally_group_commit_events")
                    .record(decided.events.len() as f64);
                debug_assert_eq!(appended.version as u64, decided.state.version);
                let state = decided.state;
                answer(jobs, decided.answers);
                if state.version / config.snapshot_every > base / config.snapshot_every {
                    snapshot(store, ledger, &state).await;
                }
                *cached = Some(state);
                return;
            }
            // Another process appended first: reload and decide again against the new tail.
            Err(
                StoreError::Conflict { .. }
                | StoreError::DuplicateTransfer { .. }
                | StoreError::StaleTransaction { .. },
            ) if attempt < config.max_retries => {
                metrics::counter!("tally_append_conflicts_total").increment(1);
                attempt += 1;
            }
            // The commit's fate may be unknown (a dropped connection); reload before the next batch so the
            // state reflects whatever the store holds.
            Err(e) => break WriteError::from(e),
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

async fn snapshot(store: &EventStore, ledger: &LedgerId, state: &Ledger) {
    let saved = match serde_json::to_value(state) {
        Ok(value) => store
            .save_snapshot(
                ledger.as_str(),
                state.version as i64,
                SNAPSHOT_SCHEMA,
                &value,
            )
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    // A missing snapshot only makes the next load slower, so it is logged, not fatal.
    if let Err(error) = saved {
        tracing::warn!(ledger = %ledger, %error, "snapshot not saved");
    }
}

fn answer(jobs: Vec<Job>, answers: Vec<Vec<ItemResult>>) {
    for (job, results) in jobs.into_iter().zip(answers) {
        // A caller that gave up waiting has dropped its receiver; its command still took effect.
        let _ = job.reply.send(Ok(results));
    }
}
