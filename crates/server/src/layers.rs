//! The middleware stack every Tally router is served behind: request id, tracing span, metrics, error
//! logging, timeout, panic catching, body limit, and problem+json fallbacks.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tracing::Instrument;

use crate::json::{payload_too_large, unsupported_media_type};
use crate::problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemReport, types};
use crate::request_id;

/// Default time a request may take before it is answered with 503 `timeout`. Ten seconds is far above a
/// healthy command (a group commit takes milliseconds) yet short enough that a stuck dependency frees the
/// connection and its memory well before a client or load balancer gives up on its own.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Default largest request body. The batch endpoint takes thousands of transfers of a few hundred bytes
/// each; 16 MiB leaves room for that while bounding what one request can make the server hold.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Route label for requests that matched no route: the raw path would make the label set unbounded.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// An error answer's body, when it is not already a problem, is read only this far to become its detail.
const MAX_FOREIGN_ERROR_BODY: usize = 1024;

/// Knobs of [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    /// How long a request may take, from its head arriving to its response head leaving; a streamed
    /// response body (server-sent events) is not bound by it.
    pub request_timeout: Duration,
    /// Largest request body in bytes.
    pub body_limit: usize,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// The body limit in force, in request extensions, for handlers that read the body themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// Wraps `router` (its routes and fallbacks, so call it after adding them) in the shared middleware stack.
///
/// From the outside in:
/// 1. sensitive headers (`authorization`, `cookie`, `set-cookie`) are marked so no layer logs them;
/// 2. the `x-request-id` is accepted if sane (1–64 visible ASCII characters), generated (UUID v7) if not,
///    stored as a [`RequestId`] extension and echoed in the response;
/// 3. a span `http_request` with `http.method`, `http.route` (the matched template) and `request_id`
///    covers the request; `http_requests_total` and `http_request_duration_seconds` are recorded with
///    `method`, `route` and `status`; any error answer that is not yet problem+json becomes one; the error
///    is logged, once (5xx at error, 4xx at debug);
/// 4. the request timeout answers 503 `timeout`;
/// 5. a panicking handler answers 500 `internal`;
/// 6. the body limit: a declared `content-length` above it is refused with 413 `payload-too-large` before
///    anything is read, and every body is cut off at the limit while it streams.
///
/// Unknown paths answer 404 `not-found` (this replaces any fallback `router` had) and known paths with
/// another method 405 `method-not-allowed` with an `Allow` header.
pub fn apply<S>(router: Router<S>, config: &LayerConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Recording before the recorder exists would silently drop the first requests' metrics.
    crate::metrics::install();
    // One composed stack, applied with one `layer` call: every `Router::layer` wraps each route in
    // another boxed service, cloned and boxed again on every request, and the request id, span,
    // metrics and timeout share one middleware for the same reason.
    let stack = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
        .layer(middleware::from_fn_with_state(
            config.request_timeout,
            observe,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(
            config.body_limit,
            refuse_declared_oversize,
        ))
        .layer(RequestBodyLimitLayer::new(config.body_limit));
    router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        // The limit is enforced once, in the stack, for every body consumer; axum's own 2 MiB default
        // would otherwise cut the batch endpoint short.
        .layer(DefaultBodyLimit::disable())
        .layer(stack)
}

async fn not_found() -> Problem {
    Problem::not_found("No resource exists at this path.")
}

async fn method_not_allowed(method: Method) -> Problem {
    method_not_allowed_problem(&method)
}

fn method_not_allowed_problem(method: &Method) -> Problem {
    Problem::new(
        types::METHOD_NOT_ALLOWED,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
    )
    .detail(format!(
        "{} is not allowed on this resource; the Allow header lists the methods that are.",
        method_label(method)
    ))
}

async fn refuse_declared_oversize(
    State(limit): State<usize>,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(BodyLimit(limit));
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        // Answering before the body is read spares the bandwidth and memory of a body we would refuse.
        return payload_too_large(Some(BodyLimit(limit))).into_response();
    }
    next.run(request).await
}

/// The request timeout: 503 `timeout` when the handler has not answered in time.
async fn within(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            types::TIMEOUT,
            StatusCode::SERVICE_UNAVAILABLE,
            "Request timed out",
        )
        .cause(format!(
            "no response within the request timeout of {} ms",
            limit.as_millis()
        ))
        .into_response(),
    }
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    Problem::internal(format!("handler panicked: {message}")).into_response()
}

/// Settles the request id, then inside the request's span: the timeout, the problem conversion, metrics
/// and the one log line of an error; finally echoes the request id.
async fn observe(State(timeout): State<Duration>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id::settle(&mut request);
    let method = method_label(request.method());
    // The matched template is shared (a reference count), not copied.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched
        .as_ref()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let span = tracing::info_span!(
        "http_request",
        http.method = %method,
        http.route = %route,
        request_id = %request_id,
    );

    let mut response = async {
        let request_method = request.method().clone();
        let response = within(timeout, request, next).await;
        let response = into_problem(response, &request_method).await;
        let status = response.status();
        let elapsed = started.elapsed();

        crate::metrics::record_request(method, route, status, elapsed);
        log_outcome(&response, elapsed);
        response
    }
    .instrument(span)
    .await;
    request_id::echo(&mut response, &request_id);
    response
}

fn log_outcome(response: &Response, elapsed: Duration) {
    let status = response.status().as_u16();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let report = response.extensions().get::<ProblemReport>();
    let problem_type = report.map(|r| r.type_.as_str());
    let detail = report.and_then(|r| r.detail.as_deref());
    let extensions = report
        .and_then(|r| r.extensions.as_ref())
        .map(tracing::field::display);
    let cause = report.and_then(|r| r.cause.as_deref());
    if response.status().is_server_error() {
        tracing::error!(
            http.status = status,
            latency_ms,
            problem.r#type = problem_type,
            problem.detail = detail,
            problem.extensions = extensions,
            error.cause = cause,
            "request failed"
        );
    } else if response.status().is_client_error() {
        tracing::debug!(
            http.status = status,
            latency_ms,
            problem.r#type = problem_type,
            problem.detail = detail,
            problem.extensions = extensions,
            "request rejected"
        );
    } else {
        tracing::debug!(http.status = status, latency_ms, "request served");
    }
}

/// Turns an error answer that is not problem+json (a library's rejection, a bare status) into one, so
/// every error a client sees has the same shape. Headers such as `Allow` or `WWW-Authenticate` are kept.
async fn into_problem(response: Response, method: &Method) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = if is_plain_text(&parts.headers) {
        foreign_error_text(body).await
    } else {
        None
    };

    let mut problem = match status {
        StatusCode::NOT_FOUND => Problem::not_found("No resource exists at this path."),
        StatusCode::METHOD_NOT_ALLOWED => method_not_allowed_problem(method),
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(None),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => unsupported_media_type(),
        StatusCode::BAD_REQUEST => Problem::bad_request("The request is malformed."),
        StatusCode::INTERNAL_SERVER_ERROR => Problem::internal("an error answer without a cause"),
        other if other.is_client_error() => Problem::new(
            types::CLIENT_ERROR,
            other,
            other.canonical_reason().unwrap_or("Client error"),
        ),
        other => Problem::new(
            types::SERVER_ERROR,
            other,
            other.canonical_reason().unwrap_or("Server error"),
        ),
    };
    if let Some(text) = text {
        // A library's rejection text describes the client's mistake (e.g. a path parameter that does
        // not parse); a server error's text is for the log only.
        problem = if status.is_client_error() {
            problem.detail(text)
        } else {
            problem.cause(text)
        };
    }

    let mut converted = problem.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            converted.headers_mut().append(name.clone(), value.clone());
        }
    }
    let mut extensions = parts.extensions;
    extensions.extend(std::mem::take(converted.extensions_mut()));
    *converted.extensions_mut() = extensions;
    converted
}

fn is_problem(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|ct| ct.starts_with(PROBLEM_CONTENT_TYPE))
}

fn is_plain_text(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|ct| ct.starts_with("text/plain"))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
}

async fn foreign_error_text(body: Body) -> Option<String> {
    let bytes = to_bytes(body, MAX_FOREIGN_ERROR_BODY).await.ok()?;
    let text = String::from_utf8(bytes.to_vec()).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Methods outside the standard set collapse into `OTHER`: a client can send any token as a method, and
/// each would otherwise become a new metric series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex, OnceLock};

    use axum::routing::get;
    use tower::ServiceExt;

    use crate::problem::ProblemBody;

    async fn call(router: Router, request: Request) -> (Response, ProblemBody) {
        let response = router.oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.expect("a buffered body");
        let problem = serde_json::from_slice(&bytes).expect("a problem body");
        (Response::from_parts(parts, Body::empty()), problem)
    }

    fn request(method: Method, uri: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("a valid request")
    }

    #[tokio::test]
    async fn a_library_rejection_becomes_a_problem_keeping_its_text_as_detail() {
        let router =
            apply(
                Router::new().route(
                    "/things/{id}",
                    get(
                        |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                            id.to_string()
                        },
                    ),
                ),
                &LayerConfig::default(),
            );

        let (response, problem) = call(router, request(Method::GET, "/things/abc")).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(problem.type_, "https://tally.dev/problems/bad-request");
        assert!(
            problem
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("abc"),
            "{problem:?}"
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_an_opaque_internal_problem() {
        let router = apply(
            Router::new().route("/boom", get(explode)),
            &LayerConfig::default(),
        );

        let (response, problem) = call(router, request(Method::GET, "/boom")).await;

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem.type_, "https://tally.dev/problems/internal");
        assert!(!format!("{problem:?}").contains("hunter2"));
    }

    async fn explode() -> &'static str {
        panic!("the database password is hunter2")
    }

    /// Collects everything the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log lines of one request, found by its request id.
    ///
    /// One global subscriber serves every test: tracing caches per call site whether anyone listens, and
    /// with per-test (thread-scoped) subscribers coming and going in parallel that cache goes stale.
    fn log_lines_of(request_id: &str) -> Vec<String> {
        let bytes = captured_logs()
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| line.contains(&format!("request_id={request_id}")))
            .map(str::to_owned)
            .collect()
    }

    fn captured_logs() -> &'static Captured {
        static LOGS: OnceLock<Captured> = OnceLock::new();
        LOGS.get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in these tests");
            // Call sites reached before the subscriber existed are remembered as unheard.
            tracing::callsite::rebuild_interest_cache();
            captured
        })
    }

    fn request_with_id(uri: &str, id: &str) -> Request {
        Request::builder()
            .uri(uri)
            .header("x-request-id", id)
            .body(Body::empty())
            .expect("a valid request")
    }

    #[tokio::test]
    async fn a_server_error_is_logged_once_with_its_cause_inside_the_request_span() {
        captured_logs();
        let router = apply(
            Router::new().route(
                "/ledgers/{ledger}",
                get(|| async { Problem::internal("pool timed out after 5 s") }),
            ),
            &LayerConfig::default(),
        );

        let (response, _) = call(router, request_with_id("/ledgers/main", "log-500")).await;

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let lines = log_lines_of("log-500");
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let line = &lines[0];
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("request failed"), "{line}");
        assert!(line.contains("http.route=/ledgers/{ledger}"), "{line}");
        assert!(line.contains("http.method=GET"), "{line}");
        assert!(line.contains("pool timed out after 5 s"), "{line}");
    }

    #[tokio::test]
    async fn a_client_error_is_logged_once_at_debug() {
        captured_logs();
        let router = apply(Router::new(), &LayerConfig::default());

        let (response, _) = call(router, request_with_id("/nowhere", "log-404")).await;

        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let lines = log_lines_of("log-404");
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let line = &lines[0];
        assert!(line.contains("DEBUG"), "{line}");
        assert!(line.contains("request rejected"), "{line}");
        assert!(line.contains("http.route=unmatched"), "{line}");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        let custom = Method::from_bytes(b"BREW").expect("a valid method token");
        assert_eq!(method_label(&custom), "OTHER");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
