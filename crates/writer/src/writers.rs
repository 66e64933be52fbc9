//! `Writers`: the handle callers submit commands through; one task per active ledger behind it.

use crate::commit::{self, CommitRequest};
use crate::error::WriteError;
use crate::task;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tally_domain::{CommandKind, DomainError, LedgerId, TransferOutcome};
use tally_eventstore::{EventMetadata, EventStore};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Limits of the writer. Each bounds memory or latency.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Events between snapshots, at least. A snapshot holds the accounts and the pending transfers, not
    /// the settled ones (those are recalled from the store), so it is also spaced by half that size: a
    /// ledger with a great many accounts does not spend its time on snapshots.
    pub snapshot_every: u64,
    /// Settled transfers a ledger keeps in memory beside its pending ones, the most recent: a retry or a
    /// reversal of one of these is decided without reading the store. Older ones are recalled from their
    /// events when a command names them, so memory stays bounded however long the ledger grows.
    pub keep_transfers: usize,
    /// Most commands decided into one transaction: bounds the transaction's size and the wait of the
    /// first caller in it.
    pub max_batch_items: usize,
    /// Jobs waiting per ledger before submissions are refused as overloaded, so a slow database turns into
    /// quick 503s rather than unbounded memory.
    pub queue_capacity: usize,
    /// Re-decisions after another process appended first, before giving up.
    pub max_retries: u32,
    /// A ledger's task stops after this long without commands; it is restarted on demand, so idle or
    /// mistyped ledgers hold no memory.
    pub idle_timeout: Duration,
    /// Transactions appending at once, each carrying the ready batches of any number of ledgers (at most
    /// `max_batch_items` events, beyond one ledger's batch). More than one so the next group starts while
    /// one commits; few, because each holds a connection and two cores gain nothing from more.
    pub committers: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 1_000,
            keep_transfers: 4_096,
            max_batch_items: 4_096,
            queue_capacity: 10_000,
            max_retries: 16,
            idle_timeout: Duration::from_secs(300),
            committers: 2,
        }
    }
}

/// One command with who sent it and why.
#[derive(Debug, Clone)]
pub struct Submission {
    pub kind: CommandKind,
    pub metadata: EventMetadata,
}

/// An accepted command: the consistency token (`ledger`, `version`) and, for transfer commands, the
/// outcome with the resulting balances.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub ledger: LedgerId,
    /// The ledger's version once this command's events are applied.
    pub version: u64,
    /// The command was an exact retry of an accepted transfer and took no effect again.
    pub duplicate: bool,
    pub outcomes: Vec<TransferOutcome>,
}

/// Each command's own answer: accepted, or refused by a rule.
pub type ItemResult = Result<Accepted, DomainError>;

pub(crate) struct Job {
    pub items: Vec<Submission>,
    pub atomic: bool,
    pub reply: oneshot::Sender<Result<Vec<ItemResult>, WriteError>>,
}

/// Routes submissions to one task per ledger. Cheap to clone.
#[derive(Clone)]
pub struct Writers {
    inner: Arc<Inner>,
}

struct Inner {
    store: EventStore,
    config: WriterConfig,
    ledgers: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    closed: bool,
    senders: HashMap<LedgerId, mpsc::Sender<Job>>,
    tasks: Vec<JoinHandle<()>>,
    /// Where ledger tasks send decided batches; started with the first ledger task.
    commits: Option<mpsc::Sender<CommitRequest>>,
    committers: Vec<JoinHandle<()>>,
}

/// Decided batches waiting for a committer. Each ledger task has at most one in flight, so this only
/// bounds a burst of many ledgers; a full queue makes ledger tasks wait, never drops a batch.
const COMMIT_QUEUE: usize = 1_024;

impl Writers {
    pub fn new(store: EventStore, config: WriterConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                ledgers: Mutex::new(Registry::default()),
            }),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.inner.store
    }

    /// Decides one command and answers once its events are durable.
    pub async fn submit(
        &self,
        ledger: &LedgerId,
        item: Submission,
    ) -> Result<ItemResult, WriteError> {
        let mut results = self.submit_batch(ledger, vec![item], false).await?;
        results
            .pop()
            .ok_or_else(|| WriteError::Unavailable("the writer answered no result".into()))
    }

    /// Decides many commands in one go. Each is accepted or refused on its own, unless `atomic`: then the
    /// first refusal refuses them all; its own result carries the rule and every other item answers
    /// [`DomainError::BatchAborted`].
    pub async fn submit_batch(
        &self,
        ledger: &LedgerId,
        items: Vec<Submission>,
        atomic: bool,
    ) -> Result<Vec<ItemResult>, WriteError> {
        let (reply, answer) = oneshot::channel();
        let mut job = Job {
            items,
            atomic,
            reply,
        };
        // A task that stopped for idleness leaves a closed channel behind; replace it once.
        for _ in 0..2 {
            let sender = self.sender(ledger)?;
            match sender.try_send(job) {
                Ok(()) => {
                    return answer.await.map_err(|_| {
                        WriteError::Unavailable("the ledger's writer stopped".into())
                    })?;
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("tally_writer_overloaded_total").increment(1);
                    return Err(WriteError::Overloaded);
                }
                Err(mpsc::error::TrySendError::Closed(returned)) => {
                    job = returned;
                    self.forget(ledger, &sender);
                }
            }
        }
        Err(WriteError::Unavailable(
            "the ledger's writer keeps stopping".into(),
        ))
    }

    fn sender(&self, ledger: &LedgerId) -> Result<mpsc::Sender<Job>, WriteError> {
        let mut registry = self
            .inner
            .ledgers
            .lock()
            .map_err(|_| WriteError::Unavailable("writer registry poisoned".into()))?;
        if registry.closed {
            return Err(WriteError::Unavailable("shutting down".into()));
        }
        if let Some(sender) = registry.senders.get(ledger)
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let commits = match &registry.commits {
            Some(commits) => commits.clone(),
            None => {
                let (commits, requests) = mpsc::channel(COMMIT_QUEUE);
                let requests = Arc::new(tokio::sync::Mutex::new(requests));
                for _ in 0..self.inner.config.committers.max(1) {
                    registry.committers.push(tokio::spawn(commit::run(
                        self.inner.store.clone(),
                        requests.clone(),
                        self.inner.config.max_batch_items,
                    )));
                }
                registry.commits = Some(commits.clone());
                commits
            }
        };
        let (sender, receiver) = mpsc::channel(self.inner.config.queue_capacity);
        let handle = tokio::spawn(task::run(
            self.inner.store.clone(),
            ledger.clone(),
            self.inner.config.clone(),
            commits,
            receiver,
        ));
        registry.tasks.retain(|t| !t.is_finished());
        registry.tasks.push(handle);
        registry.senders.insert(ledger.clone(), sender.clone());
        Ok(sender)
    }

    fn forget(&self, ledger: &LedgerId, stale: &mpsc::Sender<Job>) {
        if let Ok(mut registry) = self.inner.ledgers.lock()
            && registry
                .senders
                .get(ledger)
                .is_some_and(|s| s.same_channel(stale))
        {
            registry.senders.remove(ledger);
        }
    }

    /// Stops accepting submissions and waits until every accepted one has been answered.
    pub async fn shutdown(&self) {
        let (tasks, committers) = match self.inner.ledgers.lock() {
            Ok(mut registry) => {
                registry.closed = true;
                registry.senders.clear();
                // The committers stop once the ledger tasks, the other holders of this sender, are done.
                registry.commits = None;
                (
                    std::mem::take(&mut registry.tasks),
                    std::mem::take(&mut registry.committers),
                )
            }
            Err(_) => return,
        };
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a ledger writer task failed");
            }
        }
        for committer in committers {
            if let Err(e) = committer.await {
                tracing::error!(error = %e, "a committer task failed");
            }
        }
    }
}
