//! `telemetry::init()`: the process's tracing subscriber, filtered by `RUST_LOG`, JSON on request.

use tracing_subscriber::EnvFilter;

/// Filter used when `RUST_LOG` is unset or invalid.
// PostgreSQL notices ("relation already exists, skipping") are expected on every start; they are noise.
pub const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Installs the global tracing subscriber, once; later calls (and a subscriber installed by someone else
/// first, e.g. a test harness) leave the existing one in place.
///
/// - Everything is written to stderr; stdout belongs to the command's output.
/// - `RUST_LOG` filters (default `info`, with PostgreSQL notices at `warn`); an invalid value falls back to the default, with a warning.
/// - `TALLY_LOG_FORMAT=json` writes one JSON object per line, with the fields of the current span (for
///   requests: `http.method`, `http.route`, `request_id`) so each line stands alone; anything else writes
///   human-readable lines.
pub fn init() {
    let (filter, invalid_filter) = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(error) => (EnvFilter::new(DEFAULT_FILTER), Some((value, error))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let json =
        std::env::var("TALLY_LOG_FORMAT").is_ok_and(|v| v.trim().eq_ignore_ascii_case("json"));

    // Logs go to stderr, so a command's stdout (NDJSON, reports, tables) can be piped as it is.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok()
    } else {
        builder.try_init().is_ok()
    };

    if let (true, Some((value, error))) = (installed, invalid_filter) {
        tracing::warn!(rust_log = %value, %error, "RUST_LOG is invalid; logging at {DEFAULT_FILTER}");
    }
}
