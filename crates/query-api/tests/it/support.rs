//! The whole pipeline for real: the command API, the relay, RabbitMQ (an exchange and a projection
//! queue unique to the test), the projector, and the query API, each over HTTPS on 127.0.0.1:0 with one
//! development certificate that the client trusts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::PgPool;
use tally_eventstore::EventStore;
use tally_messaging::{AmqpConfig, Relay, RelayConfig};
use tally_projector::{Projector, ProjectorConfig};
use tally_query_api::QueryConfig;
use tally_server::{HttpConfig, TlsConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const PROBLEM: &str = "application/problem+json";

pub struct Stack {
    pub commands: String,
    pub queries: String,
    pub client: reqwest::Client,
    pub store: EventStore,
    pub pool: PgPool,
    exchange: String,
    queue: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    dir: PathBuf,
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn problem_type(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("")
    }
}

impl Stack {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, |_| {}).await
    }

    pub async fn start_with(pool: PgPool, configure: impl FnOnce(&mut QueryConfig)) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let exchange = format!("test.events.{id}");
        let queue = format!("test.projection.{id}");
        let dir = std::env::temp_dir().join(format!("tally-query-api-it-{id}"));
        let amqp = AmqpConfig {
            exchange: exchange.clone(),
            ..AmqpConfig::default()
        };
        let (stop, stopped) = watch::channel(false);
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = Vec::new();

        let relay = Relay::new(
            pool.clone(),
            RelayConfig {
                amqp: amqp.clone(),
                idle_poll: Duration::from_millis(20),
                ..RelayConfig::default()
            },
        );
        tasks.push(tokio::spawn(relay.run(until(stopped.clone()))));
        let projector = Projector::new(
            pool.clone(),
            ProjectorConfig {
                amqp: amqp.clone(),
                queue: queue.clone(),
                ..ProjectorConfig::default()
            },
        );
        tasks.push(tokio::spawn(projector.run(until(stopped.clone()))));

        let http = || HttpConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: TlsConfig::DevSelfSigned { dir: dir.clone() },
            shutdown_grace: Duration::from_secs(5),
            ..HttpConfig::default()
        };
        let commands = tally_command_api::Application::build(
            tally_command_api::Config {
                http: http(),
                ..tally_command_api::Config::default()
            },
            pool.clone(),
        )
        .await
        .expect("the command API binds");
        let mut config = QueryConfig {
            amqp,
            ..QueryConfig::default()
        };
        configure(&mut config);
        let queries = tally_query_api::Application::build(http(), config, pool.clone())
            .await
            .expect("the query API binds");
        let cache = queries.service().state().cache.clone();
        let pem = queries.certificate_pem().expect("TLS").to_owned();
        assert_eq!(
            Some(pem.as_str()),
            commands.certificate_pem(),
            "one development certificate"
        );
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("PEM"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client");
        let (commands_url, queries_url) = (commands.url(), queries.url());
        let rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let _ = commands.run(until(rx)).await;
        }));
        let rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let _ = queries.run(until(rx)).await;
        }));
        let stack = Self {
            commands: commands_url,
            queries: queries_url,
            client,
            store: EventStore::new(pool.clone()),
            pool,
            exchange,
            queue,
            stop,
            tasks,
            dir,
        };
        Self::wait_for_cache(&cache).await;
        stack
    }

    /// The query API serves from its cache only once its invalidation queue consumes.
    async fn wait_for_cache(cache: &tally_query_api::cache::AnswerCache) {
        for _ in 0..400 {
            if cache.is_live() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the query cache never went live");
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        let response = self
            .client
            .post(format!("{}{path}", self.commands))
            .json(&body)
            .send()
            .await
            .expect("answered");
        Self::answer(response).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.get_with(path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.queries));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::answer(request.send().await.expect("answered")).await
    }

    /// GET once the read model has reached `version`.
    pub async fn read(&self, path: &str, version: i64) -> Answer {
        self.get_with(path, &[("tally-min-version", &version.to_string())])
            .await
    }

    /// Posts a command and returns the ledger version it reached.
    pub async fn command(&self, path: &str, body: Value) -> i64 {
        let answer = self.post(path, body).await;
        assert!(
            answer.status == 200 || answer.status == 201,
            "{path}: {} {}",
            answer.status,
            answer.text
        );
        answer.body["version"].as_i64().expect("a version")
    }

    pub async fn ledger(&self, id: &str) -> i64 {
        self.command("/v1/ledgers", json!({"id": id, "name": id}))
            .await
    }

    pub async fn account(&self, ledger: &str, code: &str, kind: &str, currency: &str) -> i64 {
        self.command(
            &format!("/v1/ledgers/{ledger}/accounts"),
            json!({"code": code, "type": kind, "currency": currency, "scale": 2}),
        )
        .await
    }

    /// A two-leg transfer; `effective_at` backdates it.
    pub async fn transfer(
        &self,
        ledger: &str,
        debit: &str,
        credit: &str,
        amount: i64,
        effective_at: Option<&str>,
    ) -> (Uuid, i64) {
        let id = Uuid::now_v7();
        let currency = if debit.contains("eur") { "EUR" } else { "USD" };
        let mut body = json!({
            "id": id,
            "description": format!("{debit} from {credit}"),
            "legs": [
                {"account": debit, "side": "debit", "amount": amount.to_string(), "currency": currency},
                {"account": credit, "side": "credit", "amount": amount.to_string(), "currency": currency},
            ],
        });
        if let Some(at) = effective_at {
            body["effective_at"] = json!(at);
        }
        let version = self
            .command(&format!("/v1/ledgers/{ledger}/transfers"), body)
            .await;
        (id, version)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        if let Ok(connection) = tally_messaging::connect(&AmqpConfig::default()).await {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(&self.queue, QueueDeleteOptions::default())
                    .await;
                let _ = channel
                    .exchange_delete(&self.exchange, ExchangeDeleteOptions::default())
                    .await;
            }
            let _ = connection.close(0, "test done").await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
