//! A real command API on 127.0.0.1:0 with a development certificate in a temporary directory, a client
//! that trusts only that certificate, and helpers that read as the API's vocabulary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use tally_command_api::{Application, Config};
use tally_eventstore::EventStore;
use tally_server::TlsConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        Self(std::env::temp_dir().join(format!("tally-command-api-it-{}", Uuid::now_v7())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub store: EventStore,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tally_server::ServeError>>>,
    _dir: TempDir,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, |_| {}).await
    }

    pub async fn spawn_with(pool: PgPool, configure: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new();
        let mut config = Config::default();
        config.http.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        config.http.tls = TlsConfig::DevSelfSigned { dir: dir.0.clone() };
        config.http.shutdown_grace = Duration::from_secs(5);
        configure(&mut config);
        let app = Application::build(config, pool.clone())
            .await
            .expect("the command API binds");
        assert_ne!(app.port(), 0);
        let base_url = app.url();
        assert!(base_url.starts_with("https://"), "{base_url}");
        let pem = app.certificate_pem().expect("a TLS certificate").to_owned();
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(pem.as_bytes()).expect("a PEM certificate"),
            )
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async {
            let _ = stop.await;
        }));
        Self {
            base_url,
            client,
            store: EventStore::new(pool),
            shutdown: Some(shutdown),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("the request is answered")
    }

    pub async fn patch(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("the request is answered")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the request is answered")
    }

    /// The ledger's stream version as stored (0 when it does not exist).
    pub async fn version(&self, ledger: &str) -> i64 {
        self.store
            .stream_head(ledger)
            .await
            .expect("the store answers")
            .map_or(0, |(version, _)| version)
    }

    /// Stops the server gracefully and waits for it (and its writers) to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("the server stops in time")
                .expect("the server task does not panic")
                .expect("a clean stop");
        }
    }

    /// Ledger `main` with `equity:capital` (unbounded), `assets:cash` and `assets:bank` (floor 0), and
    /// `expenses:food`, all USD scale 2; `assets:cash` holds 10000.
    pub async fn main_ledger(&self) {
        created(
            self.post("/v1/ledgers", json!({"id": "main", "name": "Main"}))
                .await,
        )
        .await;
        for (code, kind, floor) in [
            ("equity:capital", "equity", None),
            ("assets:cash", "asset", Some("0")),
            ("assets:bank", "asset", Some("0")),
            ("expenses:food", "expense", None),
        ] {
            let mut body = json!({"code": code, "type": kind, "currency": "USD", "scale": 2});
            if let Some(floor) = floor {
                body["limits"] = json!({"floor": floor});
            }
            created(self.post("/v1/ledgers/main/accounts", body).await).await;
        }
        created(
            self.post(
                "/v1/ledgers/main/transfers",
                transfer(Uuid::now_v7(), "equity:capital", "assets:cash", "10000"),
            )
            .await,
        )
        .await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A two-leg USD transfer moving `amount` from `from` (credited) to `to` (debited).
pub fn transfer(id: Uuid, from: &str, to: &str, amount: &str) -> Value {
    json!({
        "id": id,
        "legs": [
            {"account": from, "side": "credit", "amount": amount, "currency": "USD"},
            {"account": to, "side": "debit", "amount": amount, "currency": "USD"},
        ],
    })
}

/// Asserts 201 and returns the body.
#[track_caller]
pub fn created(response: reqwest::Response) -> impl std::future::Future<Output = Value> {
    expect_status(response, 201)
}

/// Asserts 200 and returns the body.
#[track_caller]
pub fn ok(response: reqwest::Response) -> impl std::future::Future<Output = Value> {
    expect_status(response, 200)
}

#[track_caller]
fn expect_status(
    response: reqwest::Response,
    status: u16,
) -> impl std::future::Future<Output = Value> {
    let caller = std::panic::Location::caller();
    async move {
        let actual = response.status().as_u16();
        let version_header = response
            .headers()
            .get("tally-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(actual, status, "at {caller}: {body}");
        // Every command answer carries the consistency token in the body and in the header.
        assert_eq!(
            version_header,
            Some(body["version"].to_string()),
            "at {caller}: {body}"
        );
        assert!(body["ledger"].is_string(), "at {caller}: {body}");
        body
    }
}

/// Asserts a problem+json answer of the status and type slug, and returns the body.
#[track_caller]
pub fn problem(
    response: reqwest::Response,
    status: u16,
    slug: &'static str,
) -> impl std::future::Future<Output = Value> {
    let caller = std::panic::Location::caller();
    async move {
        let actual = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(actual, status, "at {caller}: {body}");
        assert_eq!(content_type, PROBLEM_CONTENT_TYPE, "at {caller}");
        assert_eq!(
            body["type"],
            format!("https://tally.dev/problems/{slug}"),
            "at {caller}: {body}"
        );
        assert_eq!(body["status"], status, "at {caller}: {body}");
        body
    }
}

/// The balances (posted, pending, available) an answer reports for `account`.
#[track_caller]
pub fn balance(answer: &Value, account: &str) -> (String, String, String) {
    let balances = answer["balances"].as_array().expect("balances");
    let b = balances
        .iter()
        .find(|b| b["account"] == account)
        .unwrap_or_else(|| panic!("no balance for {account} in {answer}"));
    let s = |v: &Value| v.as_str().expect("a decimal string").to_owned();
    (s(&b["posted"]), s(&b["pending"]), s(&b["available"]))
}

#[track_caller]
pub fn bal(posted: &str, pending: &str, available: &str) -> (String, String, String) {
    (posted.to_owned(), pending.to_owned(), available.to_owned())
}
