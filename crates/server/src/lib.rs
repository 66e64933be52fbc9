//! HTTP plumbing shared by the Tally command and query APIs: problem+json errors, the JSON extractor, the
//! middleware stack, metrics, health endpoints, TLS, configuration and a build-then-run server.
//!
//! Wiring an API:
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use tally_server::{ApiJson, HttpConfig, Problem, ReadinessCheck, Server};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct NewLedger { name: String }
//!
//! async fn create(ApiJson(body): ApiJson<NewLedger>) -> Result<ApiJson<serde_json::Value>, Problem> {
//!     Ok(ApiJson(serde_json::json!({ "name": body.name })))
//! }
//!
//! # async fn run() -> anyhow::Result<()> {
//! tally_server::telemetry::init();
//! let config = HttpConfig::from_env()?;
//! let app = Router::new()
//!     .route("/v1/ledgers", post(create))
//!     .merge(tally_server::health::router(ReadinessCheck::always()))
//!     .merge(tally_server::metrics::router());
//! let app = tally_server::layers::apply(app, &config.layers());
//! let server = Server::from_config(&config).await?;
//! server.run(app, tally_server::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod health;
pub mod json;
pub mod layers;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod request_id;
pub mod serve;
pub mod telemetry;
pub mod tls;

pub use config::{ConfigError, HttpConfig};
pub use health::ReadinessCheck;
pub use json::ApiJson;
pub use layers::LayerConfig;
pub use problem::{Problem, ProblemBody};
pub use request_id::RequestId;
pub use serve::{ServeError, Server, shutdown_signal};
pub use tls::TlsConfig;
