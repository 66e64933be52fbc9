//! Build, then run: `Application::build` binds (port 0 allowed) and wires the state; `run` serves until
//! shutdown, finishes in-flight requests, then drains the writers so every accepted command is answered.

use std::future::Future;

use axum::Router;
use sqlx::PgPool;
use tally_eventstore::EventStore;
use tally_server::{HttpConfig, LayerConfig, ReadinessCheck, ServeError, Server, health, layers};
use tally_writer::{WriterConfig, Writers};

use crate::routes::{accounts, ledgers, transfers};
use crate::state::AppState;

/// Everything the command API is configured with.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Listen address, TLS, timeouts and body limit (see [`HttpConfig::from_env`]).
    pub http: HttpConfig,
    /// Group-commit limits.
    pub writer: WriterConfig,
}

impl Config {
    /// Reads the HTTP settings from the environment; the writer keeps its defaults.
    pub fn from_env() -> Result<Self, tally_server::ConfigError> {
        Ok(Self {
            http: HttpConfig::from_env()?,
            writer: WriterConfig::default(),
        })
    }
}

/// A bound, not yet serving command API.
pub struct Application {
    server: Server,
    state: AppState,
    layers: LayerConfig,
}

impl Application {
    /// Binds the listener, loads (or generates) the certificate and starts nothing yet. The pool must
    /// point at a migrated database.
    pub async fn build(config: Config, pool: PgPool) -> Result<Self, ServeError> {
        let server = Server::from_config(&config.http).await?;
        let writers = Writers::new(EventStore::new(pool.clone()), config.writer);
        Ok(Self {
            server,
            state: AppState { writers, pool },
            layers: config.http.layers(),
        })
    }

    /// The bound port (the real one when bound to port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The base URL, e.g. `https://127.0.0.1:8443`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The served certificate in PEM (`None` over plain HTTP); clients of the development certificate
    /// trust it explicitly.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.server.certificate_pem()
    }

    /// Serves until `shutdown` completes; then refuses new connections, lets in-flight requests finish
    /// (within the grace period), and waits until the writers have answered every accepted command.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        self.run_with(Router::new(), &crate::openapi::document(), shutdown)
            .await
    }

    /// Like [`Application::run`], serving `extra` routes beside the command API on the same origin (the
    /// query API in `tally all`) and describing all of them with `document`.
    pub async fn run_with(
        self,
        extra: Router,
        document: &utoipa::openapi::OpenApi,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let app = layers::apply(compose(self.state.clone(), extra, document), &self.layers);
        let served = self.server.run(app, shutdown).await;
        self.state.writers.shutdown().await;
        tracing::info!("command api stopped; every accepted command was answered");
        served
    }
}

/// Every route of the command API with its state, without the middleware stack (callers wrap it with
/// [`layers::apply`], as [`Application::run`] does).
pub fn router(state: AppState) -> Router {
    compose(state, Router::new(), &crate::openapi::document())
}

fn compose(state: AppState, extra: Router, document: &utoipa::openapi::OpenApi) -> Router {
    let pool = state.pool.clone();
    let readiness = ReadinessCheck::new(move || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i32>("select 1")
                .fetch_one(&pool)
                .await
                .is_ok()
        }
    });
    Router::new()
        .merge(ledgers::router())
        .merge(accounts::router())
        .merge(transfers::router())
        .with_state(state)
        .merge(extra)
        .merge(tally_server::openapi::router(document))
        .merge(health::router(readiness))
        .merge(tally_server::metrics::router())
}
