//! `HttpConfig`: where and how an API listens, read once from environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::layers::{DEFAULT_BODY_LIMIT, DEFAULT_REQUEST_TIMEOUT, LayerConfig};
use crate::tls::TlsConfig;

/// Default listen address: loopback only, so a fresh checkout exposes nothing to the network.
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8443);
/// Default directory of the development certificate, relative to the working directory.
pub const DEFAULT_DEV_CERT_DIR: &str = ".tally/tls";
/// Default time in-flight requests get to finish once shutdown starts. Above the default request timeout,
/// so a request that started just before shutdown can still end on its own terms.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// HTTP server settings.
///
/// [`HttpConfig::from_env`] reads these variables (an empty value counts as unset):
///
/// | variable | meaning | default |
/// | --- | --- | --- |
/// | `TALLY_HTTP_ADDR` | listen address, `ip:port` (port 0 picks a free port) | `127.0.0.1:8443` |
/// | `TALLY_TLS_CERT` | PEM certificate chain; needs `TALLY_TLS_KEY` | unset: development certificate |
/// | `TALLY_TLS_KEY` | PEM private key; needs `TALLY_TLS_CERT` | unset: development certificate |
/// | `TALLY_INSECURE_HTTP` | `1`/`true` serves plain HTTP (e.g. behind a TLS-terminating proxy); conflicts with `TALLY_TLS_CERT` | `0` |
/// | `TALLY_DEV_CERT_DIR` | where the self-signed development certificate is generated and reused | `.tally/tls` |
/// | `TALLY_REQUEST_TIMEOUT_MS` | per-request timeout in milliseconds, > 0 | `10000` |
/// | `TALLY_BODY_LIMIT_BYTES` | largest request body in bytes, > 0 | `16777216` (16 MiB) |
/// | `TALLY_SHUTDOWN_GRACE_MS` | time in-flight requests get to finish on shutdown, in milliseconds | `30000` |
///
/// Without `TALLY_TLS_CERT`/`TALLY_TLS_KEY` and without `TALLY_INSECURE_HTTP`, the server serves HTTPS
/// with the development certificate: TLS is the default, plain HTTP an explicit choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Certificate source, or plain HTTP.
    pub tls: TlsConfig,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Time in-flight requests get to finish once shutdown starts.
    pub shutdown_grace: Duration,
}

/// Why the environment does not make a valid [`HttpConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable's value does not parse or is out of range.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is expected instead.
        reason: &'static str,
    },
    /// One of a pair of variables is set without the other.
    #[error("{set} is set but {missing} is not; set both or neither")]
    Incomplete {
        /// The variable that is set.
        set: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
    /// Two variables ask for contradicting things.
    #[error("{first} and {second} contradict each other; set only one")]
    Conflict {
        /// One variable.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND,
            tls: TlsConfig::DevSelfSigned {
                dir: PathBuf::from(DEFAULT_DEV_CERT_DIR),
            },
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl HttpConfig {
    /// Reads the variables listed on [`HttpConfig`] from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables listed on [`HttpConfig`] through `lookup` (a map in tests, the environment in
    /// [`HttpConfig::from_env`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let defaults = Self::default();
        Ok(Self {
            bind: get("TALLY_HTTP_ADDR").map_or(Ok(defaults.bind), |value| bind(&value))?,
            tls: tls(&get)?,
            request_timeout: get("TALLY_REQUEST_TIMEOUT_MS")
                .map_or(Ok(defaults.request_timeout), |value| {
                    request_timeout(&value)
                })?,
            body_limit: get("TALLY_BODY_LIMIT_BYTES")
                .map_or(Ok(defaults.body_limit), |value| body_limit(&value))?,
            shutdown_grace: get("TALLY_SHUTDOWN_GRACE_MS")
                .map_or(Ok(defaults.shutdown_grace), |value| shutdown_grace(&value))?,
        })
    }

    /// The settings of the middleware stack ([`crate::layers::apply`]).
    pub fn layers(&self) -> LayerConfig {
        LayerConfig {
            request_timeout: self.request_timeout,
            body_limit: self.body_limit,
        }
    }
}

fn bind(value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse::<SocketAddr>().map_err(|_| {
        invalid(
            "TALLY_HTTP_ADDR",
            value,
            "expected ip:port, e.g. 127.0.0.1:8443",
        )
    })
}

/// The certificate source from `TALLY_INSECURE_HTTP`, `TALLY_TLS_CERT`, `TALLY_TLS_KEY` and
/// `TALLY_DEV_CERT_DIR`: files need both halves, and plain HTTP excludes either.
fn tls(get: &impl Fn(&str) -> Option<String>) -> Result<TlsConfig, ConfigError> {
    let insecure = match get("TALLY_INSECURE_HTTP") {
        Some(value) => parse_flag(&value).ok_or_else(|| {
            invalid(
                "TALLY_INSECURE_HTTP",
                &value,
                "expected 1, 0, true or false",
            )
        })?,
        None => false,
    };
    match (insecure, get("TALLY_TLS_CERT"), get("TALLY_TLS_KEY")) {
        (true, Some(_), _) => Err(conflict("TALLY_INSECURE_HTTP", "TALLY_TLS_CERT")),
        (true, None, Some(_)) => Err(conflict("TALLY_INSECURE_HTTP", "TALLY_TLS_KEY")),
        (true, None, None) => Ok(TlsConfig::PlainHttp),
        (false, Some(cert), Some(key)) => Ok(TlsConfig::Files {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        }),
        (false, Some(_), None) => Err(ConfigError::Incomplete {
            set: "TALLY_TLS_CERT",
            missing: "TALLY_TLS_KEY",
        }),
        (false, None, Some(_)) => Err(ConfigError::Incomplete {
            set: "TALLY_TLS_KEY",
            missing: "TALLY_TLS_CERT",
        }),
        (false, None, None) => Ok(TlsConfig::DevSelfSigned {
            dir: get("TALLY_DEV_CERT_DIR")
                .map_or_else(|| DEFAULT_DEV_CERT_DIR.into(), PathBuf::from),
        }),
    }
}

fn request_timeout(value: &str) -> Result<Duration, ConfigError> {
    positive("TALLY_REQUEST_TIMEOUT_MS", value).map(Duration::from_millis)
}

fn body_limit(value: &str) -> Result<usize, ConfigError> {
    usize::try_from(positive("TALLY_BODY_LIMIT_BYTES", value)?).map_err(|_| {
        invalid(
            "TALLY_BODY_LIMIT_BYTES",
            value,
            "too large for this platform",
        )
    })
}

fn shutdown_grace(value: &str) -> Result<Duration, ConfigError> {
    let millis = value.trim().parse::<u64>().map_err(|_| {
        invalid(
            "TALLY_SHUTDOWN_GRACE_MS",
            value,
            "expected a whole number of milliseconds",
        )
    })?;
    Ok(Duration::from_millis(millis))
}

fn invalid(var: &'static str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason,
    }
}

fn conflict(first: &'static str, second: &'static str) -> ConfigError {
    ConfigError::Conflict { first, second }
}

fn positive(var: &'static str, value: &str) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(number) if number > 0 => Ok(number),
        _ => Err(invalid(
            var,
            value,
            "expected a whole number greater than 0",
        )),
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<HttpConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        HttpConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_gives_https_with_the_development_certificate_on_loopback() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config, HttpConfig::default());
        assert_eq!(config.bind.to_string(), "127.0.0.1:8443");
        assert_eq!(
            config.tls,
            TlsConfig::DevSelfSigned {
                dir: PathBuf::from(".tally/tls")
            }
        );
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.body_limit, 16 * 1024 * 1024);
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("TALLY_HTTP_ADDR", "[::1]:0"),
            ("TALLY_TLS_CERT", "/etc/tally/cert.pem"),
            ("TALLY_TLS_KEY", "/etc/tally/key.pem"),
            ("TALLY_REQUEST_TIMEOUT_MS", "2500"),
            ("TALLY_BODY_LIMIT_BYTES", "1024"),
            ("TALLY_SHUTDOWN_GRACE_MS", "0"),
        ])
        .expect("a valid configuration");
        assert_eq!(config.bind.to_string(), "[::1]:0");
        assert_eq!(
            config.tls,
            TlsConfig::Files {
                cert: "/etc/tally/cert.pem".into(),
                key: "/etc/tally/key.pem".into()
            }
        );
        assert_eq!(config.request_timeout, Duration::from_millis(2500));
        assert_eq!(config.body_limit, 1024);
        assert_eq!(config.shutdown_grace, Duration::ZERO);
    }

    #[test]
    fn plain_http_must_be_asked_for() {
        let config = config(&[("TALLY_INSECURE_HTTP", "1")]).expect("a valid configuration");
        assert_eq!(config.tls, TlsConfig::PlainHttp);
        let config = config_dir(&[
            ("TALLY_INSECURE_HTTP", "0"),
            ("TALLY_DEV_CERT_DIR", "/tmp/x"),
        ]);
        assert_eq!(
            config.tls,
            TlsConfig::DevSelfSigned {
                dir: "/tmp/x".into()
            }
        );
    }

    fn config_dir(vars: &[(&str, &str)]) -> HttpConfig {
        config(vars).expect("a valid configuration")
    }

    #[test]
    fn invalid_values_are_errors_naming_the_variable() {
        for (var, value) in [
            ("TALLY_HTTP_ADDR", "localhost"),
            ("TALLY_REQUEST_TIMEOUT_MS", "0"),
            ("TALLY_REQUEST_TIMEOUT_MS", "ten"),
            ("TALLY_BODY_LIMIT_BYTES", "-1"),
            ("TALLY_INSECURE_HTTP", "maybe"),
            ("TALLY_SHUTDOWN_GRACE_MS", "1.5"),
        ] {
            let error = config(&[(var, value)]).expect_err("an invalid value");
            assert!(
                matches!(&error, ConfigError::Invalid { var: v, .. } if *v == var),
                "{error}"
            );
            assert!(error.to_string().contains(var), "{error}");
        }
    }

    #[test]
    fn a_certificate_without_its_key_is_an_error() {
        assert_eq!(
            config(&[("TALLY_TLS_CERT", "cert.pem")]),
            Err(ConfigError::Incomplete {
                set: "TALLY_TLS_CERT",
                missing: "TALLY_TLS_KEY"
            })
        );
    }

    #[test]
    fn plain_http_and_a_certificate_contradict_each_other() {
        let error = config(&[
            ("TALLY_INSECURE_HTTP", "true"),
            ("TALLY_TLS_CERT", "cert.pem"),
            ("TALLY_TLS_KEY", "key.pem"),
        ]);
        assert!(
            matches!(error, Err(ConfigError::Conflict { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[("TALLY_HTTP_ADDR", ""), ("TALLY_TLS_CERT", " ")])
            .expect("a valid configuration");
        assert_eq!(config, HttpConfig::default());
    }
}
