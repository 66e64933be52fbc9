//! Query API benchmark helpers (issue 6), run by `bench/run-query`.
//!
//! `query bare`: the same-run baseline of `bench/run-query` (and, with `--status 201`, the ceiling of
//! `bench/run-http`'s single load). A bare axum handler that answers every request with fixed bytes (a
//! body and headers fetched once from the real `tally query-api` endpoint) over HTTPS, with rustls set up as
//! `tally-server` sets it up (the `ring` provider, safe default protocol versions, ALPN `h2`/`http/1.1`)
//! and the same certificate, and no middleware: no request id, tracing span, metrics, timeout, panic
//! catching or body limit, no routing beyond the fallback, no cache lookup. Runs until killed.
//!
//! `query drop-exchange`: deletes the bench's events exchange from the shared broker (the query API's
//! invalidation queue is exclusive and auto-delete, so it goes with the server).

// The same allocator as the `tally` binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum_server::tls_rustls::RustlsConfig;
use clap::{Parser, Subcommand};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tally_messaging::AmqpConfig;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve fixed bytes over HTTPS until killed.
    Bare {
        /// Listen address, e.g. 127.0.0.1:18464.
        #[arg(long)]
        addr: SocketAddr,
        /// PEM certificate chain (the query API's development certificate).
        #[arg(long)]
        cert: PathBuf,
        /// PEM private key of that certificate.
        #[arg(long)]
        key: PathBuf,
        /// The response body, byte for byte.
        #[arg(long)]
        body: PathBuf,
        /// A response header, `name: value`; repeat for each.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The response status: 200 for a read, 201 to stand in for the command API's posts.
        #[arg(long, default_value_t = 200)]
        status: u16,
    },
    /// Delete an exchange from the broker (ignores one that does not exist).
    DropExchange {
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp_url: String,
        #[arg(long)]
        exchange: String,
    },
}

/// What every request is answered with.
struct Fixed {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn answer(State(fixed): State<Arc<Fixed>>) -> impl IntoResponse {
    (fixed.status, fixed.headers.clone(), fixed.body.clone())
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("read certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("read private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn parse_headers(raw: &[String]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for line in raw {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("header {line:?} is not `name: value`"))?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("header name {name:?}"))?,
            HeaderValue::from_str(value.trim())
                .with_context(|| format!("header value {value:?}"))?,
        );
    }
    Ok(headers)
}

async fn bare(
    addr: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    body: PathBuf,
    headers: Vec<String>,
    status: u16,
) -> anyhow::Result<()> {
    let fixed = Arc::new(Fixed {
        status: StatusCode::from_u16(status).with_context(|| format!("status {status}"))?,
        headers: parse_headers(&headers)?,
        body: Bytes::from(
            std::fs::read(&body).with_context(|| format!("read body {}", body.display()))?,
        ),
    });
    let tls = RustlsConfig::from_config(Arc::new(tls_config(&cert, &key)?));
    let app = Router::new().fallback(answer).with_state(fixed);
    eprintln!("bare handler on https://{addr}");
    axum_server::bind_rustls(addr, tls)
        .serve(app.into_make_service())
        .await
        .with_context(|| format!("serve on {addr}"))
}

async fn drop_exchange(amqp_url: String, exchange: String) -> anyhow::Result<()> {
    let amqp = AmqpConfig {
        uri: amqp_url,
        exchange,
    };
    let connection = tally_messaging::connect(&amqp)
        .await
        .context("connect to RabbitMQ")?;
    let channel = connection
        .create_channel()
        .await
        .context("open a channel")?;
    channel
        .exchange_delete(
            &amqp.exchange,
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await
        .with_context(|| format!("delete exchange {}", amqp.exchange))?;
    let _ = connection.close(200, "done").await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Bare {
            addr,
            cert,
            key,
            body,
            headers,
            status,
        } => bare(addr, cert, key, body, headers, status).await,
        Command::DropExchange { amqp_url, exchange } => drop_exchange(amqp_url, exchange).await,
    }
}
