//! RFC 9457 problem details: the one shape every error answer of the Tally APIs takes.

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The media type of every error body (RFC 9457 §3).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Prefix of every problem `type`. It is an identifier, not a page anyone promises to serve: clients switch
/// on the whole URI, so it must never change once published.
pub const PROBLEM_TYPE_BASE: &str = "https://tally.dev/problems/";

/// The problem types this crate itself answers with, kept in one table so the UI can switch on them.
/// The API crates keep their own table of domain problems next to their `ApiError`.
pub mod types {
    /// 400: the body is not syntactically valid JSON.
    pub const MALFORMED_JSON: &str = "malformed-json";
    /// 422: the body is JSON, but not of the expected shape (wrong type, unknown or missing field).
    pub const INVALID_BODY: &str = "invalid-body";
    /// 415: the request did not say `Content-Type: application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported-media-type";
    /// 413: the body is larger than the configured limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload-too-large";
    /// 400: any other malformed request (bad path or query parameter, unreadable body).
    pub const BAD_REQUEST: &str = "bad-request";
    /// 404: no route matches the path.
    pub const NOT_FOUND: &str = "not-found";
    /// 405: the path exists, the method does not (the `Allow` header lists the ones that do).
    pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
    /// 503: the request did not finish within the configured request timeout.
    pub const TIMEOUT: &str = "timeout";
    /// 503: the service is up but cannot serve yet (a dependency is down, or it is still starting).
    pub const NOT_READY: &str = "not-ready";
    /// 500: anything the server did wrong; the body says nothing more, the log does.
    pub const INTERNAL: &str = "internal";
    /// Any other 4xx answered without a problem body by code outside Tally (a library's rejection).
    pub const CLIENT_ERROR: &str = "client-error";
    /// Any other 5xx answered without a problem body by code outside Tally.
    pub const SERVER_ERROR: &str = "server-error";
}

/// Builds the full problem `type` URI from its slug, e.g. `unbalanced-transfer`.
pub fn problem_type(slug: &str) -> String {
    format!("{PROBLEM_TYPE_BASE}{slug}")
}

/// An error answer. Build one with [`Problem::new`] (or a shortcut) and return it from a handler.
///
/// A 5xx problem is opaque on the wire: its `detail` is replaced by a generic sentence and its extensions
/// are dropped, because they may carry internal text. Both still reach the log, together with the cause
/// given to [`Problem::internal`]. Errors are logged once, by the layer in [`crate::layers`].
#[derive(Debug, Clone)]
pub struct Problem {
    /// Stable URI naming the problem kind; clients switch on it.
    pub type_: Cow<'static, str>,
    /// Short summary of the problem kind; the same for every problem of one `type`.
    pub title: Cow<'static, str>,
    /// The HTTP status, repeated in the body as RFC 9457 asks.
    pub status: StatusCode,
    /// Explanation specific to this occurrence, safe to show to the client.
    pub detail: Option<String>,
    /// URI reference identifying this occurrence, if one exists.
    pub instance: Option<String>,
    /// Further members of the body (e.g. the offending `field`), flattened next to the standard ones.
    pub extensions: Map<String, Value>,
    /// The cause of a server error, for the log only.
    internal: Option<String>,
}

impl Problem {
    /// A problem of type `slug` (see [`problem_type`]).
    pub fn new(slug: &str, status: StatusCode, title: impl Into<Cow<'static, str>>) -> Self {
        Self::with_type(problem_type(slug), status, title)
    }

    /// A problem whose `type` is already a full URI.
    pub fn with_type(
        type_: impl Into<Cow<'static, str>>,
        status: StatusCode,
        title: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            type_: type_.into(),
            title: title.into(),
            status,
            detail: None,
            instance: None,
            extensions: Map::new(),
            internal: None,
        }
    }

    /// A 500 whose `cause` goes to the log and never to the client.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let mut problem = Self::new(
            types::INTERNAL,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
        );
        problem.internal = Some(cause.to_string());
        problem
    }

    /// 404 `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(types::NOT_FOUND, StatusCode::NOT_FOUND, "Not found").detail(detail)
    }

    /// 400 `bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(types::BAD_REQUEST, StatusCode::BAD_REQUEST, "Bad request").detail(detail)
    }

    /// Sets the client-facing explanation of this occurrence.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the URI reference of this occurrence.
    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Adds a member to the body. The standard members (`type`, `title`, `status`, `detail`, `instance`)
    /// cannot be overridden this way: such keys are ignored when the body is written.
    #[must_use]
    pub fn extension(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// Records the cause for the log; it never reaches the client.
    #[must_use]
    pub fn cause(mut self, cause: impl fmt::Display) -> Self {
        self.internal = Some(cause.to_string());
        self
    }

    /// The body as the client sees it (opaque for 5xx).
    pub fn body(&self) -> ProblemBody {
        let opaque = self.status.is_server_error();
        let detail = if opaque {
            Some(generic_server_detail(self.status).to_owned())
        } else {
            self.detail.clone()
        };
        let extensions = if opaque {
            Map::new()
        } else {
            self.extensions
                .iter()
                .filter(|(key, _)| !RESERVED_MEMBERS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        };
        ProblemBody {
            type_: self.type_.to_string(),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail,
            instance: self.instance.clone(),
            extensions,
        }
    }
}

const RESERVED_MEMBERS: [&str; 5] = ["type", "title", "status", "detail", "instance"];

fn generic_server_detail(status: StatusCode) -> &'static str {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        "The service cannot handle the request right now; retry later."
    } else {
        "The server could not complete the request."
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.title,
            self.status.as_u16(),
            self.type_
        )?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// The serialised problem, as documented in the OpenAPI description and as clients (and tests) read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(
    as = Problem,
    example = json!({
        "type": "https://tally.dev/problems/invalid-body",
        "title": "Invalid request body",
        "status": 422,
        "detail": "legs[1].amount: invalid type: integer `5`, expected a string at line 1 column 80"
    })
)]
pub struct ProblemBody {
    /// Stable URI naming the problem kind; clients switch on it.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// URI reference identifying this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Members specific to the problem type.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extensions: Map<String, Value>,
}

/// What the logging layer learns about a problem answer; kept in the response extensions because the body
/// the client sees may have been made opaque.
#[derive(Debug, Clone)]
pub(crate) struct ProblemReport {
    pub(crate) type_: String,
    pub(crate) detail: Option<String>,
    pub(crate) extensions: Option<Value>,
    pub(crate) cause: Option<String>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body();
        let report = ProblemReport {
            type_: self.type_.into_owned(),
            detail: self.detail,
            extensions: (!self.extensions.is_empty()).then_some(Value::Object(self.extensions)),
            cause: self.internal,
        };
        let mut response = match serde_json::to_vec(&body) {
            Ok(bytes) => (self.status, bytes).into_response(),
            // A map of JSON values always serialises; this arm only keeps the server from panicking.
            Err(_) => (self.status, Vec::new()).into_response(),
        };
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response.extensions_mut().insert(report);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use serde_json::json;

    async fn body_of(problem: Problem) -> (StatusCode, String, Value) {
        let response = problem.into_response();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a buffered body");
        let value = serde_json::from_slice(&bytes).expect("a JSON body");
        (status, content_type, value)
    }

    #[tokio::test]
    async fn a_client_error_serialises_every_member_and_flattens_extensions() {
        let problem = Problem::new(
            "unbalanced-transfer",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unbalanced transfer",
        )
        .detail("debits and credits differ in USD")
        .instance("/v1/ledgers/main/transfers/42")
        .extension("currency", "USD");

        let (status, content_type, body) = body_of(problem).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(content_type, PROBLEM_CONTENT_TYPE);
        assert_eq!(
            body,
            json!({
                "type": "https://tally.dev/problems/unbalanced-transfer",
                "title": "Unbalanced transfer",
                "status": 422,
                "detail": "debits and credits differ in USD",
                "instance": "/v1/ledgers/main/transfers/42",
                "currency": "USD",
            })
        );
    }

    #[tokio::test]
    async fn absent_members_are_left_out() {
        let problem = Problem::new("conflict", StatusCode::CONFLICT, "Conflict");
        let (_, _, body) = body_of(problem).await;
        assert_eq!(
            body,
            json!({"type": "https://tally.dev/problems/conflict", "title": "Conflict", "status": 409})
        );
    }

    #[tokio::test]
    async fn extensions_cannot_override_standard_members() {
        let problem = Problem::new("conflict", StatusCode::CONFLICT, "Conflict")
            .extension("status", 200)
            .extension("type", "about:blank");
        let (_, _, body) = body_of(problem).await;
        assert_eq!(body["status"], 409);
        assert_eq!(body["type"], "https://tally.dev/problems/conflict");
    }

    #[tokio::test]
    async fn a_server_error_body_carries_no_internal_text() {
        let problem = Problem::internal("connection to 10.0.0.7:5432 refused")
            .detail("SELECT * FROM events failed")
            .extension("sql", "SELECT 1");

        let response = problem.into_response();
        let report = response.extensions().get::<ProblemReport>().cloned();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a buffered body");
        let text = String::from_utf8_lossy(&bytes);

        assert!(!text.contains("10.0.0.7"), "{text}");
        assert!(!text.contains("SELECT"), "{text}");
        let body: ProblemBody = serde_json::from_slice(&bytes).expect("a problem body");
        assert_eq!(body.type_, "https://tally.dev/problems/internal");
        assert_eq!(body.status, 500);
        assert_eq!(
            body.detail.as_deref(),
            Some("The server could not complete the request.")
        );
        assert!(body.extensions.is_empty());
        let report = report.expect("a problem report");
        assert_eq!(
            report.cause.as_deref(),
            Some("connection to 10.0.0.7:5432 refused")
        );
    }

    #[test]
    fn the_type_is_built_from_a_slug() {
        assert_eq!(
            problem_type("not-found"),
            "https://tally.dev/problems/not-found"
        );
    }

    #[test]
    fn the_schema_is_named_problem_and_allows_extension_members() {
        let schema = serde_json::to_value(<ProblemBody as utoipa::PartialSchema>::schema())
            .unwrap_or(Value::Null);
        assert_eq!(<ProblemBody as ToSchema>::name(), "Problem");
        assert!(schema["properties"]["type"].is_object(), "{schema}");
        assert!(
            schema["additionalProperties"].is_object() || schema["additionalProperties"] == true,
            "{schema}"
        );
    }
}
