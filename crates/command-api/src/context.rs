//! `CommandContext`: who sends a command and why, recorded on every event it causes.
//!
//! Until authentication lands, every request acts as the explicit development principal
//! [`ANONYMOUS_ACTOR`]; the client is whatever the caller names in `Tally-Client`, sanitised.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use tally_eventstore::EventMetadata;
use tally_server::RequestId;

/// The actor of every event until authentication lands: explicit, so such events are easy to find later.
pub const ANONYMOUS_ACTOR: &str = "anonymous";
/// The client recorded when the caller names none (or an unusable one).
pub const UNKNOWN_CLIENT: &str = "unknown";
/// The header a caller names its client application in.
pub const CLIENT_HEADER: &str = "tally-client";
/// Client names are labels in every event; a caller must not be able to store a document there.
pub const MAX_CLIENT_LEN: usize = 64;

/// The metadata of the events a request causes: actor, client, the request id as correlation id and the
/// W3C trace context.
#[derive(Debug, Clone)]
pub struct CommandContext(pub EventMetadata);

impl<S: Send + Sync> FromRequestParts<S> for CommandContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let request_id = RequestId::from_request_parts(parts, state).await?;
        Ok(Self(metadata(&parts.headers, &request_id)))
    }
}

fn metadata(headers: &HeaderMap, request_id: &RequestId) -> EventMetadata {
    EventMetadata {
        actor: ANONYMOUS_ACTOR.to_owned(),
        client: headers
            .get(CLIENT_HEADER)
            .and_then(|v| sanitize_client(v.as_bytes()))
            .unwrap_or_else(|| UNKNOWN_CLIENT.to_owned()),
        correlation_id: Some(request_id.to_string()),
        causation_id: None,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_traceparent(v))
            .map(str::to_owned),
    }
}

/// Keeps a client name of 1 to [`MAX_CLIENT_LEN`] characters of `A-Z a-z 0-9 . _ - / : @ +`; anything
/// else is dropped whole rather than repaired, so one client never appears under two spellings.
fn sanitize_client(raw: &[u8]) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_CLIENT_LEN
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@+".contains(b));
    ok.then(|| String::from_utf8_lossy(raw).into_owned())
}

/// A W3C `traceparent` of version 00: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase,
/// with neither id all zeros.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00"
            && hex(trace, 32) && nonzero(trace)
            && hex(parent, 16) && nonzero(parent)
            && hex(flags, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_traceparents_are_kept_and_others_dropped() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!is_traceparent(bad), "{bad:?}");
        }
    }

    #[test]
    fn client_names_are_bounded_and_plain() {
        assert_eq!(
            sanitize_client(b"web-ui/1.2").as_deref(),
            Some("web-ui/1.2")
        );
        assert_eq!(sanitize_client(b""), None);
        assert_eq!(sanitize_client(b"two words"), None);
        assert_eq!(sanitize_client("caf\u{e9}".as_bytes()), None);
        assert_eq!(sanitize_client("a".repeat(65).as_bytes()), None);
    }

    #[test]
    fn the_request_id_is_the_correlation_id_and_the_actor_is_anonymous() {
        let mut headers = HeaderMap::new();
        headers.insert(CLIENT_HEADER, "cli".parse().expect("a header value"));
        let id = RequestId::parse(b"req-7").expect("a sane id");
        let meta = metadata(&headers, &id);
        assert_eq!(meta.actor, "anonymous");
        assert_eq!(meta.client, "cli");
        assert_eq!(meta.correlation_id.as_deref(), Some("req-7"));
        assert_eq!(meta.traceparent, None);
    }
}
