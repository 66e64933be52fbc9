//! The query API's shared state and the path every ledger-scoped read takes: wait for
//! `Tally-Min-Version`, answer from the cache, or read a snapshot and cache it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::Response;
use sqlx::PgPool;

use crate::cache::{Answer, AnswerCache};
use crate::error::QueryError;
use crate::extract::min_version;
use crate::live::LiveHub;
use crate::versions::{LedgerClock, Versions};

#[derive(Debug, Clone)]
pub struct Settings {
    /// The projection whose checkpoints say how far the read models are.
    pub projection: String,
    /// How long a query with `Tally-Min-Version` waits for the read model.
    pub min_version_wait: Duration,
}

/// The query side's shared state, one reference count to clone, because axum's `State` extractor clones
/// it for every request and the parts (the pool, the moka cache's handles, the hub) are dearer to clone
/// one by one.
#[derive(Clone)]
pub struct QueryState(Arc<StateParts>);

impl QueryState {
    pub fn new(parts: StateParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for QueryState {
    type Target = StateParts;

    fn deref(&self) -> &StateParts {
        &self.0
    }
}

/// What [`QueryState`] shares.
pub struct StateParts {
    pub pool: PgPool,
    /// The audit routes read the store itself.
    pub store: tally_eventstore::EventStore,
    pub versions: Versions,
    pub cache: AnswerCache,
    pub live: LiveHub,
    pub settings: Settings,
}

impl StateParts {
    /// Honours `Tally-Min-Version` for `ledger`: returns once the read model has reached it,
    /// `version-beyond-head` at once for a version the ledger has not reached, or `not-yet-projected`
    /// after the configured wait.
    pub async fn consistent(
        &self,
        ledger: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<LedgerClock>>, QueryError> {
        let Some(wanted) = min_version(headers)? else {
            return Ok(self.versions.get(ledger));
        };
        self.reach(ledger, wanted).await.map(Some)
    }

    /// Waits until the read model of `ledger` has reached `wanted`.
    pub async fn reach(&self, ledger: &str, wanted: i64) -> Result<Arc<LedgerClock>, QueryError> {
        let clock = match self.versions.get(ledger) {
            Some(clock) => clock,
            None => {
                let projected: i64 = sqlx::query_scalar(
                    "select coalesce((select version from read.checkpoints \
                                      where projection = $1 and ledger_id = $2), 0)",
                )
                .bind(&self.settings.projection)
                .bind(ledger)
                .fetch_one(&self.pool)
                .await?;
                self.versions.register(ledger, projected)
            }
        };
        if clock.projected() < wanted {
            self.within_head(ledger, wanted).await?;
        }
        self.versions
            .wait_for(&clock, wanted, self.settings.min_version_wait)
            .await
            .map_err(|projected| QueryError::NotYetProjected {
                ledger: ledger.to_owned(),
                wanted,
                projected,
            })?;
        Ok(clock)
    }

    /// Refuses at once a version no command has reached: the store's head bounds every token a command
    /// answered, so waiting for more could only time out. No head at all means no such ledger.
    async fn within_head(&self, ledger: &str, wanted: i64) -> Result<(), QueryError> {
        match self.store.stream_head(ledger).await? {
            None => Err(QueryError::LedgerNotFound(ledger.to_owned())),
            Some((head, _)) if head < wanted => Err(QueryError::VersionBeyondHead {
                field: "Tally-Min-Version",
                wanted,
                head,
            }),
            Some(_) => Ok(()),
        }
    }

    /// Answers a cacheable read: from the cache when fresh, else through `read` (which reports the
    /// version it read at), then caches the answer.
    pub async fn cached<F, Fut>(
        &self,
        ledger: &str,
        key: String,
        headers: &HeaderMap,
        read: F,
    ) -> Result<Response, QueryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Answer, QueryError>>,
    {
        let clock = self.consistent(ledger, headers).await?;
        if let Some(answer) = self.cache.get(&key, clock.as_deref()) {
            return Ok(answer.respond(headers));
        }
        let answer = Arc::new(read().await?);
        // The read models are committed asynchronously; after a PostgreSQL crash they can be briefly
        // behind a version this process already saw, so the promise is checked on what was read.
        if let Some(wanted) = min_version(headers)?
            && answer.version < wanted
        {
            return Err(QueryError::NotYetProjected {
                ledger: ledger.to_owned(),
                wanted,
                projected: answer.version,
            });
        }
        let clock = self.versions.register(ledger, answer.version);
        self.cache.put(key, answer.clone(), &clock);
        Ok(answer.respond(headers))
    }
}
