//! What this instance knows of each ledger's versions: the newest one the event stream announced
//! (`seen`) and the one the read model has reached (`projected`). The cache serves an entry only while
//! its version is at least both; `Tally-Min-Version` waits on `projected`; live updates follow it.
//!
//! `projected` is read from `read.checkpoints` by one poller: quickly while some ledger is known to be
//! behind (an event announced, or a client waiting for a version), and once a second for every ledger
//! this instance has served, which also bounds staleness when an invalidation message is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Notify, watch};

/// One ledger's clocks.
#[derive(Debug)]
pub struct LedgerClock {
    seen: AtomicI64,
    projected: watch::Sender<i64>,
}

impl LedgerClock {
    fn new(projected: i64) -> Self {
        Self {
            seen: AtomicI64::new(projected),
            projected: watch::Sender::new(projected),
        }
    }

    /// The newest version known to exist: a cached answer older than this is stale.
    pub fn current(&self) -> i64 {
        self.seen
            .load(Ordering::Acquire)
            .max(*self.projected.borrow())
    }

    pub fn projected(&self) -> i64 {
        *self.projected.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.projected.subscribe()
    }

    fn behind(&self) -> bool {
        self.seen.load(Ordering::Acquire) > *self.projected.borrow()
    }
}

#[derive(Clone)]
pub struct Versions {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    projection: String,
    ledgers: RwLock<HashMap<String, Arc<LedgerClock>>>,
    /// Wakes the poller when some ledger fell behind.
    behind: Notify,
}

impl Versions {
    pub fn new(pool: PgPool, projection: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                projection: projection.to_owned(),
                ledgers: RwLock::new(HashMap::new()),
                behind: Notify::new(),
            }),
        }
    }

    /// The clock of a ledger this instance has seen exist (`None` for any other name, so requests for
    /// made-up ledgers cannot grow the map).
    pub fn get(&self, ledger: &str) -> Option<Arc<LedgerClock>> {
        self.inner
            .ledgers
            .read()
            .ok()
            .and_then(|map| map.get(ledger).cloned())
    }

    /// Registers a ledger known to exist, at the projected version just read with it.
    pub fn register(&self, ledger: &str, projected: i64) -> Arc<LedgerClock> {
        if let Some(clock) = self.get(ledger) {
            self.set_projected(&clock, projected);
            return clock;
        }
        let mut map = match self.inner.ledgers.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(ledger.to_owned())
            .or_insert_with(|| Arc::new(LedgerClock::new(projected)))
            .clone()
    }

    /// The event stream announced `version` of `ledger`.
    pub fn seen(&self, ledger: &str, version: i64) {
        let clock = self.register(ledger, 0);
        clock.seen.fetch_max(version, Ordering::AcqRel);
        if clock.behind() {
            self.inner.behind.notify_one();
        }
    }

    fn set_projected(&self, clock: &LedgerClock, version: i64) {
        clock.projected.send_if_modified(|current| {
            let newer = version > *current;
            if newer {
                *current = version;
            }
            newer
        });
    }

    /// Waits until the read model of `ledger` has reached `version`; `Err(projected)` after `timeout`.
    pub async fn wait_for(
        &self,
        clock: &LedgerClock,
        version: i64,
        timeout: Duration,
    ) -> Result<(), i64> {
        if clock.projected() >= version {
            return Ok(());
        }
        clock.seen.fetch_max(version, Ordering::AcqRel);
        self.inner.behind.notify_one();
        let mut projected = clock.subscribe();
        match tokio::time::timeout(timeout, projected.wait_for(|v| *v >= version)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(clock.projected()),
        }
    }

    /// Polls `read.checkpoints` until the process ends: every `fast` while a ledger is behind, every
    /// `slow` otherwise.
    pub async fn run_poller(self, fast: Duration, slow: Duration) {
        loop {
            let behind: Vec<String> = self.snapshot(|clock| clock.behind());
            let ledgers = if behind.is_empty() {
                tokio::select! {
                    _ = self.inner.behind.notified() => continue,
                    _ = tokio::time::sleep(slow) => self.snapshot(|_| true),
                }
            } else {
                behind
            };
            if let Err(error) = self.refresh(&ledgers).await {
                tracing::warn!(%error, "reading projection checkpoints failed");
                tokio::time::sleep(slow).await;
                continue;
            }
            tokio::time::sleep(fast).await;
        }
    }

    fn snapshot(&self, keep: impl Fn(&LedgerClock) -> bool) -> Vec<String> {
        self.inner
            .ledgers
            .read()
            .map(|map| {
                map.iter()
                    .filter(|(_, clock)| keep(clock))
                    .map(|(ledger, _)| ledger.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn refresh(&self, ledgers: &[String]) -> Result<(), sqlx::Error> {
        if ledgers.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select ledger_id, version from read.checkpoints \
             where projection = $1 and ledger_id = any($2)",
        )
        .bind(&self.inner.projection)
        .bind(ledgers)
        .fetch_all(&self.inner.pool)
        .await?;
        for (ledger, version) in rows {
            if let Some(clock) = self.get(&ledger) {
                self.set_projected(&clock, version);
            }
        }
        Ok(())
    }
}
