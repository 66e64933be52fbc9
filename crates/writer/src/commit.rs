//! The committer: gathers the decided batches of every ledger task that has one ready and appends them in
//! one transaction, so many ledgers share a commit (and its WAL flush) the way one ledger's callers share a
//! batch. A few committers run at once, so the next group forms and starts while one is committing.

use std::sync::Arc;
use tally_eventstore::{AppendResult, AppendStage, EventStore, NewEvent, StoreError, StreamAppend};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::queue::take_waiting;

/// One ledger's decided batch, waiting for a transaction.
pub(crate) struct CommitRequest {
    pub stream_id: String,
    pub expected_version: i64,
    /// The head hash the batch was decided after, when it is chained on a batch still committing: a strict
    /// precondition (see `StreamAppend::expected_head`).
    pub expected_head: Option<[u8; 32]>,
    pub events: Vec<NewEvent>,
    /// Told the head hash the batch will leave as soon as its transaction has announced it, before the
    /// events are sent: a large next batch can be sent chained on it at once, so PostgreSQL takes it in
    /// while this one inserts.
    pub announced: Option<oneshot::Sender<[u8; 32]>>,
    /// Told the new head hash once the batch's statement has run (its head row locked, the commit still
    /// to come): whatever waits by then is sent chained on it.
    pub appended: Option<oneshot::Sender<[u8; 32]>>,
    pub reply: oneshot::Sender<Result<AppendResult, CommitFailure>>,
}

/// Why a batch was not appended.
#[derive(Debug)]
pub(crate) enum CommitFailure {
    /// This stream's own outcome: a conflict to re-decide, or an error of its append.
    Store(StoreError),
    /// The group's transaction failed as a whole; if it was the commit, the fate of the batch is unknown.
    Group(String),
}

/// Runs one committer until every sender of `requests` is gone and the queue is empty.
pub(crate) async fn run(
    store: EventStore,
    requests: Arc<Mutex<mpsc::Receiver<CommitRequest>>>,
    max_events: usize,
) {
    loop {
        // One committer gathers at a time; the others wait here, and the next takes what arrives while
        // this one's transaction runs.
        let group = {
            let mut requests = requests.lock().await;
            let Some(first) = requests.recv().await else {
                return;
            };
            let mut group = vec![first];
            take_waiting(&mut requests, &mut group, max_events, |r| r.events.len());
            group
        };
        commit(&store, group).await;
    }
}

async fn commit(store: &EventStore, mut group: Vec<CommitRequest>) {
    metrics::histogram!("tally_group_commit_streams").record(group.len() as f64);
    let mut signals: Vec<_> = group
        .iter_mut()
        .map(|r| (r.announced.take(), r.appended.take()))
        .collect();
    let appends: Vec<StreamAppend<'_>> = group
        .iter()
        .map(|r| StreamAppend {
            stream_id: &r.stream_id,
            expected_version: r.expected_version,
            events: &r.events,
            expected_head: r.expected_head,
        })
        .collect();
    let outcome = store
        .append_many_notify(&appends, |i, stage, head| {
            let Some((announced, appended)) = signals.get_mut(i) else {
                return;
            };
            let signal = match stage {
                AppendStage::Announced => announced.take(),
                AppendStage::Inserted => appended.take(),
            };
            if let Some(signal) = signal {
                // A ledger task that stopped waiting is gone; nothing to tell it.
                let _ = signal.send(head.head_hash);
            }
        })
        .await;
    drop(appends);
    match outcome {
        Ok(results) => {
            for (request, result) in group.into_iter().zip(results) {
                // A ledger task that stopped waiting is gone; nothing to tell it.
                let _ = request.reply.send(result.map_err(CommitFailure::Store));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, streams = group.len(), "group commit failed");
            let reason = e.to_string();
            for request in group {
                let _ = request
                    .reply
                    .send(Err(CommitFailure::Group(reason.clone())));
            }
        }
    }
}
