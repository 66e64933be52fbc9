//! The `x-request-id` of each request: accepted from the caller when sane, generated otherwise, echoed back.

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// The header carrying the request id, in both directions.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept. Ids end up in every log line of the request, so a caller must not be able to
/// make them arbitrarily large.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the current request, available to handlers as an extractor (and in request extensions).
/// It is a good correlation id for events the request causes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// Accepts an incoming id: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters (no spaces, no control
    /// characters), so it can be logged and echoed verbatim without escaping or header injection.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let sane = !value.is_empty()
            && value.len() <= MAX_REQUEST_ID_LEN
            && value.iter().all(|b| b.is_ascii_graphic());
        if !sane {
            return None;
        }
        std::str::from_utf8(value).ok().map(|s| Self(s.into()))
    }

    /// A fresh id: a UUID v7, so ids sort by time in logs.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string().into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Outside the layer (a unit test calling a handler directly) there is no id yet; a fresh one
        // keeps handlers free of an Option they would never see in production.
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}

/// Middleware: settles the request id, exposes it to everything inside, and echoes it in the response.
pub(crate) async fn set_request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| RequestId::parse(value.as_bytes()))
        .unwrap_or_else(RequestId::generate);
    let header = HeaderValue::from_str(id.as_str());
    if let Ok(header) = &header {
        // Inner layers and handlers read the settled id, not whatever the caller sent.
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), header.clone());
    }
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    if let Ok(header) = header {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), header);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_id_is_kept() {
        let id = RequestId::parse(b"abc-123_DEF.456:x/y").expect("a sane id");
        assert_eq!(id.as_str(), "abc-123_DEF.456:x/y");
    }

    #[test]
    fn an_id_of_exactly_the_maximum_length_is_kept() {
        let raw = "a".repeat(MAX_REQUEST_ID_LEN);
        assert!(RequestId::parse(raw.as_bytes()).is_some());
    }

    #[test]
    fn an_id_longer_than_the_maximum_is_refused() {
        let raw = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        assert_eq!(RequestId::parse(raw.as_bytes()), None);
    }

    #[test]
    fn an_empty_id_is_refused() {
        assert_eq!(RequestId::parse(b""), None);
    }

    #[test]
    fn spaces_control_characters_and_non_ascii_are_refused() {
        for raw in [
            &b"two words"[..],
            b"tab\there",
            b"new\nline",
            b"\x7f",
            "caf\u{e9}".as_bytes(),
        ] {
            assert_eq!(RequestId::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn a_generated_id_is_a_uuid_v7() {
        let id = RequestId::generate();
        let uuid = Uuid::parse_str(id.as_str()).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 7);
        assert!(RequestId::parse(id.as_str().as_bytes()).is_some());
    }
}
