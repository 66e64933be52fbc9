//! HTTPS with the development certificate (HTTP/1.1 and h2), certificate files, and plain HTTP.

use std::net::SocketAddr;

use tally_server::tls::{DEV_CERT_FILE, DEV_KEY_FILE};
use tally_server::{Server, TlsConfig};

use crate::support::{ClientKind, Options, TempDir, TestServer, Tls, client};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn https_negotiates_h2_and_still_speaks_http1() {
    let server = TestServer::start().await;
    assert!(server.base_url.starts_with("https://"));

    let response = server
        .client(ClientKind::Auto)
        .get(server.url("/livez"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);

    let response = server
        .client(ClientKind::Http1)
        .get(server.url("/livez"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let server = TestServer::start().await;

    let error = client(None, ClientKind::Auto)
        .get(server.url("/livez"))
        .send()
        .await
        .expect_err("an untrusted certificate");

    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn plain_http_mode_serves_http() {
    let server = TestServer::start_with(Options {
        tls: Tls::Plain,
        ..Options::default()
    })
    .await;
    assert!(server.base_url.starts_with("http://"));
    assert_eq!(server.certificate_pem, None);

    let response = server
        .client
        .get(server.url("/livez"))
        .send()
        .await
        .expect("a response");

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_development_certificate_is_generated_once_and_reused() {
    let dir = TempDir::new();
    let config = TlsConfig::DevSelfSigned {
        dir: dir.path().to_owned(),
    };

    let first = Server::bind(loopback(), config.clone())
        .await
        .expect("bind");
    let first_pem = first.certificate_pem().expect("a certificate").to_owned();
    assert_eq!(first.scheme(), "https");
    drop(first);
    let second = Server::bind(loopback(), config).await.expect("bind");

    assert_eq!(second.certificate_pem(), Some(first_pem.as_str()));
    assert!(first_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(dir.path().join(DEV_CERT_FILE).is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(DEV_KEY_FILE))
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn certificate_files_are_served() {
    let dir = TempDir::new();
    let (cert, key) =
        tally_server::tls::ensure_dev_certificate(dir.path()).expect("a development certificate");

    let server = Server::bind(loopback(), TlsConfig::Files { cert, key })
        .await
        .expect("bind");
    let pem = server.certificate_pem().expect("a certificate").to_owned();
    let url = format!("{}/anything", server.url());
    let task = tokio::spawn(server.run(axum::Router::new(), std::future::pending()));

    let response = client(Some(&pem), ClientKind::Auto)
        .get(url)
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 404);
    task.abort();
}

#[tokio::test]
async fn a_missing_certificate_file_is_a_clear_error() {
    let dir = TempDir::new();
    let error = Server::bind(
        loopback(),
        TlsConfig::Files {
            cert: dir.path().join("missing-cert.pem"),
            key: dir.path().join("missing-key.pem"),
        },
    )
    .await
    .expect_err("no certificate");

    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(chain.contains("missing-cert.pem"), "{chain}");
}
