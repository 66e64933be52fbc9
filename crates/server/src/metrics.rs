//! The process-wide Prometheus recorder and the `/metrics` endpoint that renders it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter of answered requests, labelled `method`, `route`, `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// Histogram of request latency (until the response head), labelled `method`, `route`, `status`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// Buckets (upper bounds, in seconds) of every histogram whose name ends in `_seconds`: from a cached read
/// (well under a millisecond) through a group commit (milliseconds) to a timed-out request (10 s), with
/// roughly 2.5× steps so each bucket still tells something. Histograms named otherwise (e.g. batch sizes)
/// are rendered as summaries unless their crate renders them itself.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// Histogram samples are buffered until folded into buckets; a scrape folds them, and so does this
/// interval, so an unscraped process does not grow without bound.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics` recorder, once; later calls return
/// the same handle, so tests may start any number of servers in one process.
///
/// If another recorder was installed first (by code outside this crate), that one keeps receiving the
/// `metrics` macros, and the handle returned here renders an empty registry; a warning says so.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS);
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                // Only an empty bucket list is refused, and ours is a non-empty constant.
                Err(error) => {
                    tracing::warn!(%error, "latency buckets refused; histograms become summaries");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from request head to response head"
    );
}

fn spawn_upkeep(handle: PrometheusHandle) {
    // A plain thread, not a task: the recorder outlives any one Tokio runtime (each test has its own).
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread; histograms are folded only on scrape");
    }
}

/// A router serving `GET /metrics` in the Prometheus text format; it installs the recorder if needed.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let handle = install();
    Router::new().route("/metrics", get(move || render(handle.clone())))
}

async fn render(handle: PrometheusHandle) -> Response {
    let mut response = (StatusCode::OK, handle.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Most routes see a handful of (method, status) pairs; past this many a route's series are looked up by
/// label instead of kept, so a client cycling through odd statuses cannot grow a thread's table.
const SERIES_PER_ROUTE: usize = 32;

/// One (method, status) series of a route, resolved to its handles.
struct Series {
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

thread_local! {
    /// The request series each worker thread has recorded into, by route, because finding a series by
    /// its labels in the registry costs three allocations and a hash of every label per request; the
    /// handles stay valid for the process (one global recorder), and threads share nothing, so nothing
    /// is locked.
    /// Routes are the router's templates (or [`crate::layers::UNMATCHED_ROUTE`]), so the table is bounded.
    static SERIES: RefCell<HashMap<Box<str>, Vec<Series>>> = RefCell::new(HashMap::new());
}

pub(crate) fn record_request(
    method: &'static str,
    route: &str,
    status: StatusCode,
    elapsed: Duration,
) {
    let status = status.as_u16();
    let seconds = elapsed.as_secs_f64();
    SERIES.with_borrow_mut(|routes| {
        let series = match routes.get_mut(route) {
            Some(series) => series,
            None => routes.entry(route.into()).or_default(),
        };
        if let Some(known) = series
            .iter()
            .find(|s| s.status == status && s.method == method)
        {
            known.requests.increment(1);
            known.duration.record(seconds);
            return;
        }
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        let found = Series {
            method,
            status,
            requests: metrics::counter!(HTTP_REQUESTS_TOTAL, &labels),
            duration: metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels),
        };
        found.requests.increment(1);
        found.duration.record(seconds);
        if series.len() < SERIES_PER_ROUTE {
            series.push(found);
        }
    });
}
