//! The `x-request-id` of each request: accepted from the caller when sane, generated otherwise, echoed back.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// The header carrying the request id, in both directions.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept. Ids end up in every log line of the request, so a caller must not be able to
/// make them arbitrarily large.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the current request, available to handlers as an extractor (and in request extensions).
/// It is a good correlation id for events the request causes.
///
/// Held as the header value it travels as: an incoming id is the request's own bytes, and every copy (the
/// extension, the span, the response header) is a reference count, not a new string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Accepts an incoming id: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters (no spaces, no control
    /// characters), so it can be logged and echoed verbatim without escaping or header injection.
    pub fn parse(value: &[u8]) -> Option<Self> {
        Self::sane(value)
            .then(|| HeaderValue::from_bytes(value).ok())
            .flatten()
            .map(Self)
    }

    fn from_header(value: &HeaderValue) -> Option<Self> {
        Self::sane(value.as_bytes()).then(|| Self(value.clone()))
    }

    fn sane(value: &[u8]) -> bool {
        !value.is_empty()
            && value.len() <= MAX_REQUEST_ID_LEN
            && value.iter().all(|b| b.is_ascii_graphic())
    }

    /// A fresh id: a UUID v7, so ids sort by time in logs.
    ///
    /// Its random bits come from a per-thread generator rather than the operating system, because an id
    /// must be unique, not unguessable, and the `uuid` crate's own v7 takes a process-wide lock and a
    /// `getrandom` system call for each one.
    pub fn generate() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let mut random = [0u8; 10];
        let (high, low) = random.split_at_mut(8);
        high.copy_from_slice(&next_random().to_le_bytes());
        low.copy_from_slice(&next_random().to_le_bytes()[..2]);
        let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid.hyphenated().encode_lower(&mut text);
        // Lowercase hex digits and hyphens: always a valid header value.
        Self(
            HeaderValue::from_str(text).unwrap_or_else(|_| {
                HeaderValue::from_static("00000000-0000-7000-8000-000000000000")
            }),
        )
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored (checked by `parse`, or generated), so this cannot fail.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header(&self) -> &HeaderValue {
        &self.0
    }
}

/// SplitMix64 over a per-thread state seeded from the standard library's random hasher keys (themselves
/// from the operating system once per thread): fast, and 64 independent bits per call.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish());
    }
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// Settles the request id: the caller's if sane, else a fresh one written into the request's header so
/// inner layers and handlers read the settled id, not whatever the caller sent. The id is also stored as
/// a request extension.
pub(crate) fn settle(request: &mut Request) -> RequestId {
    let incoming = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(RequestId::from_header);
    let id = match incoming {
        Some(id) => id,
        None => {
            let id = RequestId::generate();
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER.clone(), id.header().clone());
            id
        }
    };
    request.extensions_mut().insert(id.clone());
    id
}

/// Echoes the settled id in the response.
pub(crate) fn echo(response: &mut Response, id: &RequestId) {
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), id.header().clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

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

    #[test]
    fn generated_ids_differ_within_one_millisecond() {
        let ids: std::collections::HashSet<_> =
            (0..10_000).map(|_| RequestId::generate()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
