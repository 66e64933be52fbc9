//! `Server`: bind first (port 0 allowed), then serve HTTP/1.1 and HTTP/2 until shutdown, finishing
//! in-flight requests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use hyper_util::rt::TokioTimer;

use crate::config::{DEFAULT_SHUTDOWN_GRACE, HttpConfig};
use crate::tls::{self, LoadedTls, TlsConfig, TlsError};

/// A client gets this long to send its request head; without it an idle or slow-loris connection holds
/// its socket and memory forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound (in use, not permitted).
    #[error("bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// TLS could not be set up.
    #[error("set up TLS")]
    Tls(#[from] TlsError),
    /// The blocking task loading the TLS material panicked or was cancelled.
    #[error("load TLS material")]
    TlsTask(#[source] tokio::task::JoinError),
    /// Serving failed.
    #[error("serve on {addr}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A bound, not yet serving HTTP(S) server. Build, then run:
///
/// ```no_run
/// # async fn example(router: axum::Router) -> Result<(), tally_server::serve::ServeError> {
/// use tally_server::serve::{Server, shutdown_signal};
/// use tally_server::tls::TlsConfig;
///
/// let server = Server::bind(([127, 0, 0, 1], 0).into(), TlsConfig::PlainHttp).await?;
/// println!("listening on {}", server.url());
/// server.run(router, shutdown_signal()).await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    tls: Option<LoadedTls>,
    shutdown_grace: Duration,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and loads, or for the development certificate first
    /// generates, the TLS certificate.
    pub async fn bind(addr: SocketAddr, tls: TlsConfig) -> Result<Self, ServeError> {
        // Reading or generating key material is blocking file and CPU work.
        let tls = tokio::task::spawn_blocking(move || tls::load(&tls))
            .await
            .map_err(ServeError::TlsTask)??;
        let bind_error = |source| ServeError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?
            .into_std()
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            tls,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        })
    }

    /// Binds as `config` says, with its shutdown grace period.
    pub async fn from_config(config: &HttpConfig) -> Result<Self, ServeError> {
        Ok(Self::bind(config.bind, config.tls.clone())
            .await?
            .shutdown_grace(config.shutdown_grace))
    }

    /// Sets how long in-flight requests may run once shutdown starts; after it, their connections are
    /// closed. Defaults to 30 s.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// `https`, or `http` in plain HTTP mode.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The base URL, e.g. `https://127.0.0.1:8443`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.local_addr)
    }

    /// The served certificate chain in PEM (`None` in plain HTTP mode); a client adds the development
    /// certificate as a trusted root.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|tls| tls.certificate_pem.as_str())
    }

    /// Serves `router` over HTTP/1.1 and HTTP/2 (over TLS the protocol is chosen by ALPN) until `shutdown`
    /// completes. Then the listener closes at once, so new connections are refused, and in-flight
    /// requests get the grace period to finish before their connections are closed.
    ///
    /// Handlers can extract `ConnectInfo<SocketAddr>` for the peer address.
    pub async fn run(
        self,
        router: Router,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let addr = self.local_addr;
        let handle = Handle::new();
        let make_service = router.into_make_service_with_connect_info::<SocketAddr>();
        let serve = async {
            match self.tls {
                Some(tls) => {
                    let config = RustlsConfig::from_config(tls.server_config);
                    let mut server =
                        axum_server::from_tcp_rustls(self.listener, config).handle(handle.clone());
                    configure(server.http_builder());
                    server.serve(make_service).await
                }
                None => {
                    let mut server = axum_server::from_tcp(self.listener).handle(handle.clone());
                    configure(server.http_builder());
                    server.serve(make_service).await
                }
            }
        };
        tokio::pin!(serve);
        tracing::info!(%addr, "serving");

        let result = tokio::select! {
            result = &mut serve => result,
            () = shutdown => {
                tracing::info!(
                    %addr,
                    grace_ms = self.shutdown_grace.as_millis(),
                    "shutting down: no new connections, finishing in-flight requests"
                );
                handle.graceful_shutdown(Some(self.shutdown_grace));
                serve.await
            }
        };
        tracing::info!(%addr, "stopped");
        result.map_err(|source| ServeError::Serve { addr, source })
    }
}

fn configure(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
}

/// Completes on Ctrl-C or SIGTERM (what an orchestrator sends before killing the process).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
