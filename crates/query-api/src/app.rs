//! `QueryService` starts the query side's background work (checkpoint poller, cache invalidation
//! consumer, live hub) and hands out its routes, so `tally all` can serve them beside the command API;
//! `Application` serves them alone (`tally query-api`).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use sqlx::PgPool;
use tally_messaging::AmqpConfig;
use tally_server::{HttpConfig, LayerConfig, ReadinessCheck, ServeError, Server, health, layers};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::AnswerCache;
use crate::invalidation::Invalidation;
use crate::live::LiveHub;
use crate::state::{QueryState, Settings, StateParts};
use crate::versions::Versions;

/// The query side's settings.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// RabbitMQ and the events exchange the cache invalidation listens on.
    pub amqp: AmqpConfig,
    /// The projection whose checkpoints tell how far the read models are.
    pub projection: String,
    /// `TALLY_MIN_VERSION_WAIT_MS` (default 2000): the longest a `Tally-Min-Version` query waits.
    pub min_version_wait: Duration,
    /// `TALLY_QUERY_CACHE_BYTES` (default 64 MiB): the answer cache's size.
    pub cache_bytes: u64,
    /// A safety net only: entries are invalidated by version long before this.
    pub cache_ttl: Duration,
    /// How often checkpoints are read while a ledger is known to be behind.
    pub poll_fast: Duration,
    /// How often every served ledger's checkpoint is read anyway.
    pub poll_slow: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            amqp: AmqpConfig::default(),
            projection: "ledger".into(),
            min_version_wait: Duration::from_secs(2),
            cache_bytes: 64 * 1024 * 1024,
            cache_ttl: Duration::from_secs(300),
            poll_fast: Duration::from_millis(5),
            poll_slow: Duration::from_secs(1),
        }
    }
}

impl QueryConfig {
    /// The defaults, with `TALLY_MIN_VERSION_WAIT_MS` and `TALLY_QUERY_CACHE_BYTES` applied.
    pub fn from_env(amqp: AmqpConfig) -> Result<Self, tally_server::ConfigError> {
        let mut config = Self {
            amqp,
            ..Self::default()
        };
        if let Some(ms) = env_number("TALLY_MIN_VERSION_WAIT_MS")? {
            config.min_version_wait = Duration::from_millis(ms);
        }
        if let Some(bytes) = env_number("TALLY_QUERY_CACHE_BYTES")? {
            config.cache_bytes = bytes;
        }
        Ok(config)
    }
}

fn env_number(name: &'static str) -> Result<Option<u64>, tally_server::ConfigError> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => {
            raw.trim()
                .parse()
                .map(Some)
                .map_err(|_| tally_server::ConfigError::Invalid {
                    var: name,
                    value: raw.clone(),
                    reason: "expected a non-negative integer",
                })
        }
        _ => Ok(None),
    }
}

/// The running query side: its state, routes and background tasks.
pub struct QueryService {
    state: QueryState,
    closing: watch::Sender<bool>,
    poller: JoinHandle<()>,
    invalidation: JoinHandle<()>,
}

impl QueryService {
    /// Starts the poller, the invalidation consumer and the live hub. The pool must point at a migrated
    /// database.
    pub fn start(pool: PgPool, config: QueryConfig) -> Self {
        let (closing, closed) = watch::channel(false);
        let versions = Versions::new(pool.clone(), &config.projection);
        let cache = AnswerCache::new(config.cache_bytes, config.cache_ttl);
        let poller = tokio::spawn(
            versions
                .clone()
                .run_poller(config.poll_fast, config.poll_slow),
        );
        let invalidation = {
            let mut closed = closed.clone();
            tokio::spawn(
                Invalidation {
                    amqp: config.amqp.clone(),
                    versions: versions.clone(),
                    cache: cache.clone(),
                    max_backoff: Duration::from_secs(10),
                }
                .run(async move {
                    let _ = closed.wait_for(|stop| *stop).await;
                }),
            )
        };
        let state = QueryState::new(StateParts {
            live: LiveHub::new(pool.clone(), closed),
            store: tally_eventstore::EventStore::new(pool.clone()),
            pool,
            versions,
            cache,
            settings: Settings {
                projection: config.projection,
                min_version_wait: config.min_version_wait,
            },
        });
        Self {
            state,
            closing,
            poller,
            invalidation,
        }
    }

    /// The query routes with their state, without health, metrics or OpenAPI routes.
    pub fn routes(&self) -> Router {
        crate::routes::router().with_state(self.state.clone())
    }

    /// Ends the live streams (call at the shutdown signal, before the server waits for open requests).
    pub fn closing(&self) -> impl Fn() + Send + Sync + 'static {
        let closing = self.closing.clone();
        move || {
            let _ = closing.send(true);
        }
    }

    pub fn state(&self) -> &QueryState {
        &self.state
    }

    /// Ends live streams and the background tasks.
    pub async fn stop(self) {
        let _ = self.closing.send(true);
        self.poller.abort();
        let _ = self.invalidation.await;
    }
}

/// The query API serving alone.
pub struct Application {
    server: Server,
    service: QueryService,
    layers: LayerConfig,
    pool: PgPool,
}

impl Application {
    pub async fn build(
        http: HttpConfig,
        config: QueryConfig,
        pool: PgPool,
    ) -> Result<Self, ServeError> {
        let server = Server::from_config(&http).await?;
        Ok(Self {
            server,
            service: QueryService::start(pool.clone(), config),
            layers: http.layers(),
            pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn certificate_pem(&self) -> Option<&str> {
        self.server.certificate_pem()
    }

    pub fn service(&self) -> &QueryService {
        &self.service
    }

    /// Serves until `shutdown`, then closes live streams and stops the background tasks.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let pool = self.pool.clone();
        let readiness = ReadinessCheck::new(move || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i32>("select 1")
                    .fetch_one(&pool)
                    .await
                    .is_ok()
            }
        });
        let app = self
            .service
            .routes()
            .merge(tally_server::openapi::router(&crate::openapi::document()))
            .merge(health::router(readiness))
            .merge(tally_server::metrics::router());
        let app = layers::apply(app, &self.layers);
        let closing = self.service.closing();
        // Live streams never end by themselves; they must close before the server waits for requests.
        let shutdown = async move {
            shutdown.await;
            closing();
        };
        let served = self.server.run(app, shutdown).await;
        self.service.stop().await;
        served
    }
}
