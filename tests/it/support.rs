//! What the end-to-end tests share: an [`Install`] is one isolated installation of Tally (its own
//! database, exchange, projection queue, port and certificate directory) run as the `tally` program.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use uuid::Uuid;

/// The program under test: this crate's build of `tally::main`.
pub const TALLY: &str = env!("CARGO_BIN_EXE_tally-e2e");

/// One installation with names of its own; [`Install::clean`] removes all of them.
pub struct Install {
    pub env: Vec<(&'static str, String)>,
    /// `https://127.0.0.1:<port>`, where `tally all` serves.
    pub base: String,
    pub database: String,
    pub exchange: String,
    pub queue: String,
    pub dir: PathBuf,
}

impl Default for Install {
    fn default() -> Self {
        Self::new()
    }
}

impl Install {
    pub fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let database = format!("tally_e2e_{id}");
        let exchange = format!("test.events.{id}");
        let queue = format!("test.projection.{id}");
        let dir = std::env::temp_dir().join(format!("tally-e2e-{id}"));
        Self {
            env: vec![
                (
                    "TALLY_DATABASE_URL",
                    format!("postgres://postgres@127.0.0.1:5432/{database}"),
                ),
                ("TALLY_HTTP_ADDR", format!("127.0.0.1:{port}")),
                ("TALLY_DEV_CERT_DIR", dir.display().to_string()),
                ("TALLY_EVENTS_EXCHANGE", exchange.clone()),
                ("TALLY_PROJECTION_QUEUE", queue.clone()),
                ("RUST_LOG", "warn".into()),
            ],
            base: format!("https://127.0.0.1:{port}"),
            database,
            exchange,
            queue,
            dir,
        }
    }

    /// `tally <args>` with this installation's environment; stdout is discarded unless the caller
    /// sets it again.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(TALLY);
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `tally <args>` to its end; true when it exits successfully.
    pub async fn run(&self, args: &[&str]) -> bool {
        self.command(args)
            .status()
            .await
            .expect("tally runs")
            .success()
    }

    /// Starts `tally all` and waits until `/readyz` answers 200.
    pub async fn start(&self, client: &reqwest::Client) -> Child {
        let child = self.command(&["all"]).spawn().expect("tally all starts");
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("tally all did not become ready");
    }

    /// Drops the database, the exchange, the queue and the certificate directory.
    pub async fn clean(&self) {
        tally_messaging::test_support::delete_broker_objects(
            &Default::default(),
            &[&self.queue],
            &[&self.exchange],
        )
        .await;
        let _ = std::process::Command::new("psql")
            .args(["-qh", "127.0.0.1", "-U", "postgres", "-c"])
            .arg(format!(
                "drop database if exists {} with (force)",
                self.database
            ))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client for the installation's self-signed development certificate.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}
