//! TLS settings: certificates from PEM files, a self-signed development certificate, or plain HTTP.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File name of the development certificate inside its directory.
pub const DEV_CERT_FILE: &str = "dev-cert.pem";
/// File name of the development private key inside its directory (mode 0600).
pub const DEV_KEY_FILE: &str = "dev-key.pem";

/// Names the development certificate is valid for: what a browser or client on this machine dials.
const DEV_CERT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How the server speaks to its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsConfig {
    /// HTTPS with a certificate chain and private key from PEM files.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// HTTPS with a self-signed certificate for `localhost`, `127.0.0.1` and `::1`, generated into
    /// `dir/dev-cert.pem` and `dir/dev-key.pem` on first run and reused afterwards.
    DevSelfSigned {
        /// Where the certificate and key live.
        dir: PathBuf,
    },
    /// Plain HTTP, only when explicitly configured (e.g. behind a TLS-terminating load balancer).
    PlainHttp,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("no {what} in {path}")]
    Pem {
        /// What was looked for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The development certificate could not be generated.
    #[error("generate the development certificate")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key (e.g. they do not belong together).
    #[error("certificate {cert} and key {key} are not usable together")]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
}

/// A loaded TLS configuration.
#[derive(Clone)]
pub struct LoadedTls {
    /// The rustls configuration, with ALPN `h2`, `http/1.1`.
    pub server_config: Arc<ServerConfig>,
    /// The certificate chain in PEM, as read from disk. For the development certificate this is what a
    /// client (or a test) adds as a trusted root.
    pub certificate_pem: String,
}

impl std::fmt::Debug for LoadedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTls")
            .field("certificate_pem", &self.certificate_pem)
            .finish_non_exhaustive()
    }
}

/// Installs rustls's `ring` provider as the process default, once; later calls (and a provider installed
/// by someone else first) are fine.
pub fn install_crypto_provider() {
    // An error only says a default is already installed, which is all this function wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads (and for [`TlsConfig::DevSelfSigned`] first creates) the certificate; `None` for plain HTTP.
///
/// This reads files and may generate a key: call it from a blocking context (as
/// [`crate::serve::Server::bind`] does).
pub fn load(config: &TlsConfig) -> Result<Option<LoadedTls>, TlsError> {
    match config {
        TlsConfig::PlainHttp => Ok(None),
        TlsConfig::Files { cert, key } => load_files(cert, key).map(Some),
        TlsConfig::DevSelfSigned { dir } => {
            let (cert, key) = ensure_dev_certificate(dir)?;
            load_files(&cert, &key).map(Some)
        }
    }
}

fn load_files(cert_path: &Path, key_path: &Path) -> Result<LoadedTls, TlsError> {
    let certificate_pem = fs::read_to_string(cert_path).map_err(|source| TlsError::Io {
        action: "read certificate",
        path: cert_path.to_owned(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .and_then(|chain| {
            if chain.is_empty() {
                Err(rustls::pki_types::pem::Error::NoItemsFound)
            } else {
                Ok(chain)
            }
        })
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            path: cert_path.to_owned(),
            source,
        })?;
    let key_pem = fs::read(key_path).map_err(|source| TlsError::Io {
        action: "read private key",
        path: key_path.to_owned(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::Pem {
        what: "private key",
        path: key_path.to_owned(),
        source,
    })?;

    install_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let rustls_error = |source| TlsError::Rustls {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    };
    let mut server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rustls_error)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(LoadedTls {
        server_config: Arc::new(server_config),
        certificate_pem,
    })
}

/// Generation is check-then-write; servers started concurrently in one process must not interleave it.
static DEV_CERT_LOCK: Mutex<()> = Mutex::new(());

/// Returns the paths of the development certificate and key in `dir`, generating both if either is
/// missing (a certificate without its key, or the reverse, is useless). A complete pair is never
/// replaced: if it is unusable, loading it fails loudly instead of silently rotating the certificate
/// that clients were told to trust.
pub fn ensure_dev_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join(DEV_CERT_FILE);
    let key_path = dir.join(DEV_KEY_FILE);
    let _guard = DEV_CERT_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }

    create_private_dir(dir)?;
    let mut params = rcgen::CertificateParams::new(
        DEV_CERT_NAMES
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<Vec<_>>(),
    )?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tally development certificate");
    let key_pair = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key_pair)?;

    // The key goes first: a certificate on disk then always has its key beside it.
    write_atomically(&key_path, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&cert_path, certificate.pem().as_bytes(), 0o644)?;
    tracing::info!(
        cert = %cert_path.display(),
        "generated a self-signed development certificate; clients must trust it explicitly"
    );
    Ok((cert_path, key_path))
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| TlsError::Io {
        action: "create directory",
        path: dir.to_owned(),
        source,
    })
}

/// Writes through a temporary file and a rename, so a crash never leaves a half-written key that a later
/// run would try to reuse; the mode is set at creation so the key is never readable by others, not even
/// briefly.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    let io_error = |action, source| TlsError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(source) = written.and_then(|()| fs::rename(&temporary, path)) {
        let _ = fs::remove_file(&temporary);
        return Err(io_error("write", source));
    }
    Ok(())
}
