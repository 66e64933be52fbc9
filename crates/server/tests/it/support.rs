//! A tiny app behind the real layers, served by a real `Server`, and a client that trusts its certificate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tally_server::problem::{PROBLEM_CONTENT_TYPE, ProblemBody};
use tally_server::{
    ApiJson, LayerConfig, ReadinessCheck, RequestId, ServeError, Server, TlsConfig, health, layers,
    metrics,
};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// The body the `/echo` handler takes.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub name: String,
    pub count: u32,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("tally-server-it-{}", uuid::Uuid::now_v7()));
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Options {
    pub tls: Tls,
    pub layers: LayerConfig,
    pub shutdown_grace: Duration,
}

pub enum Tls {
    Dev,
    Plain,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tls: Tls::Dev,
            layers: LayerConfig::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

pub struct TestServer {
    pub base_url: String,
    pub addr: SocketAddr,
    pub certificate_pem: Option<String>,
    pub client: reqwest::Client,
    /// Flip to make `/readyz` fail.
    pub ready: Arc<AtomicBool>,
    /// Notified when `/slow` has started handling a request.
    pub slow_entered: Arc<Notify>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    _dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let dir = TempDir::new();
        let tls = match options.tls {
            Tls::Dev => TlsConfig::DevSelfSigned {
                dir: dir.path().to_owned(),
            },
            Tls::Plain => TlsConfig::PlainHttp,
        };
        let ready = Arc::new(AtomicBool::new(true));
        let slow_entered = Arc::new(Notify::new());
        let app = layers::apply(app(ready.clone(), slow_entered.clone()), &options.layers);

        let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), tls)
            .await
            .expect("bind")
            .shutdown_grace(options.shutdown_grace);
        let base_url = server.url();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let certificate_pem = server.certificate_pem().map(str::to_owned);
        let client = client(certificate_pem.as_deref(), ClientKind::Auto);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(app, async {
            let _ = shutdown_rx.await;
        }));

        Self {
            base_url,
            addr,
            certificate_pem,
            client,
            ready,
            slow_entered,
            shutdown: Some(shutdown_tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A client of the given kind that trusts this server's certificate.
    pub fn client(&self, kind: ClientKind) -> reqwest::Client {
        client(self.certificate_pem.as_deref(), kind)
    }

    /// Starts the graceful shutdown; `stopped` then waits for `run` to return.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    pub async fn stopped(&mut self) -> Result<(), ServeError> {
        let task = self.task.take().expect("the server task is awaited once");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task does not panic")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum ClientKind {
    /// Whatever ALPN picks (h2 over TLS).
    Auto,
    /// HTTP/1.1 only.
    Http1,
}

pub fn client(certificate_pem: Option<&str>, kind: ClientKind) -> reqwest::Client {
    // Only the server's own certificate is trusted, so the test proves that trust, not the machine's roots.
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(20));
    if let Some(pem) = certificate_pem {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(pem.as_bytes()).expect("a PEM certificate"),
        );
    }
    if let ClientKind::Http1 = kind {
        builder = builder.http1_only();
    }
    builder.build().expect("a client")
}

fn app(ready: Arc<AtomicBool>, slow_entered: Arc<Notify>) -> Router {
    Router::new()
        .route(
            "/echo",
            post(|ApiJson(order): ApiJson<Order>| async move { ApiJson(order) }),
        )
        .route(
            "/things/{id}",
            get(|UrlPath(id): UrlPath<String>| async move { id }),
        )
        .route(
            "/request-id",
            get(|id: RequestId| async move { id.to_string() }),
        )
        .route(
            "/slow",
            get(move |Query(query): Query<HashMap<String, u64>>| {
                let entered = slow_entered.clone();
                async move {
                    entered.notify_one();
                    let ms = query.get("ms").copied().unwrap_or(1000);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    "done"
                }
            }),
        )
        .merge(health::router(ReadinessCheck::new(move || {
            let ready = ready.clone();
            async move { ready.load(Ordering::SeqCst) }
        })))
        .merge(metrics::router())
}

/// Asserts the status and the problem+json content type.
#[track_caller]
pub fn assert_problem_head(response: &reqwest::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status, "status of {response:?}");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(content_type, PROBLEM_CONTENT_TYPE);
}

/// Asserts a problem+json answer of the given status and type slug, and returns its body.
pub async fn expect_problem(response: reqwest::Response, status: u16, slug: &str) -> ProblemBody {
    assert_problem_head(&response, status);
    let body: ProblemBody = response.json().await.expect("a problem body");
    assert_eq!(body.type_, format!("https://tally.dev/problems/{slug}"));
    assert_eq!(body.status, status);
    assert!(!body.title.is_empty());
    body
}
