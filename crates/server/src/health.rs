//! `/livez` and `/readyz`: whether the process serves at all, and whether it can serve requests now.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::problem::{Problem, types};

/// A readiness check slower than this counts as not ready: a probe must answer before the orchestrator's
/// own probe timeout (commonly 1–5 s), and a dependency that slow is not one to send traffic to.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

type CheckFn = dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync;

/// What `/readyz` asks: `true` when the service can do its work (e.g. its database answers).
#[derive(Clone)]
pub struct ReadinessCheck(Arc<CheckFn>);

impl ReadinessCheck {
    /// A check from an async closure, e.g. `ReadinessCheck::new(move || { let pool = pool.clone(); async
    /// move { pool.acquire().await.is_ok() } })`.
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(check())))
    }

    /// A check that always passes, for services without dependencies.
    pub fn always() -> Self {
        Self::new(|| async { true })
    }

    /// Runs the check, bounded by [`READINESS_TIMEOUT`].
    pub async fn is_ready(&self) -> bool {
        tokio::time::timeout(READINESS_TIMEOUT, (self.0)())
            .await
            .unwrap_or(false)
    }
}

impl fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadinessCheck")
    }
}

/// A router serving `GET /livez` (200 `{"status":"live"}` while the process serves) and `GET /readyz`
/// (200 `{"status":"ready"}`, or 503 problem `not-ready`).
pub fn router<S>(readiness: ReadinessCheck) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/livez", get(live))
        .route("/readyz", get(move || ready(readiness.clone())))
}

async fn live() -> Response {
    axum::Json(json!({ "status": "live" })).into_response()
}

async fn ready(readiness: ReadinessCheck) -> Response {
    if readiness.is_ready().await {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        Problem::new(
            types::NOT_READY,
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready",
        )
        .cause("the readiness check failed or timed out")
        .into_response()
    }
}
