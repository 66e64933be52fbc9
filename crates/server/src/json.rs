//! `ApiJson<T>`: the JSON body extractor whose every rejection is a problem+json answer.

use std::error::Error as _;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::layers::BodyLimit;
use crate::problem::{Problem, types};

/// A JSON request body (as an extractor) or response body (as a return value).
///
/// Rejections, each a [`Problem`]:
/// - no or another `Content-Type` than JSON: 415 `unsupported-media-type`;
/// - not JSON at all (including an empty body): 400 `malformed-json`;
/// - JSON of the wrong shape (wrong type, missing field, unknown field under
///   `#[serde(deny_unknown_fields)]`): 422 `invalid-body`, whose `detail` is the path and the reason,
///   e.g. `legs[1].amount: invalid type: integer 5, expected a string at line 1 column 80`;
/// - a string holding the NUL character (`\u0000`), which PostgreSQL cannot store in text: 422
///   `invalid-body`;
/// - larger than the body limit of [`crate::layers`]: 413 `payload-too-large`.
///
/// The body is read through the limit, so an oversized body is refused once the limit is passed and never
/// buffered whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request.extensions().get::<BodyLimit>().copied();
        if !json_content_type(request.headers()) {
            return Err(unsupported_media_type());
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| rejection_problem(&JsonRejection::from(rejection), limit))?;
        // The plain parse first, because axum's tracks the path to every value it reads (a string per
        // key) and that path only matters for the error message: a body that fails is parsed again by
        // axum to name the field, and both parsers take and refuse exactly the same bodies.
        match serde_json::from_slice::<T>(&body) {
            Ok(_) if has_nul_escape(&body) => Err(nul_refused()),
            Ok(value) => Ok(Self(value)),
            Err(_) => match Json::<T>::from_bytes(&body) {
                Ok(Json(value)) => Ok(Self(value)),
                Err(rejection) => Err(rejection_problem(&rejection, limit)),
            },
        }
    }
}

/// Whether the JSON text escapes a NUL character (`\u0000`) anywhere. A raw NUL byte is not valid JSON,
/// so the escape is the only way one can arrive; `\\u0000` (an escaped backslash before `u0000`) is not one.
fn has_nul_escape(body: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"\\u0000";
    body.windows(ESCAPE.len())
        .enumerate()
        .filter(|(_, window)| *window == ESCAPE)
        .any(|(at, _)| {
            let backslashes_before = body[..at].iter().rev().take_while(|b| **b == b'\\').count();
            backslashes_before % 2 == 0
        })
}

/// 422 `invalid-body` for a string holding NUL.
fn nul_refused() -> Problem {
    Problem::new(
        types::INVALID_BODY,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid request body",
    )
    .detail("strings may not contain the NUL character (\\u0000)")
}

/// `application/json` or any `application/*+json`, parameters (`charset`) allowed: axum's `Json` rule.
fn json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
        })
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

fn rejection_problem(rejection: &JsonRejection, limit: Option<BodyLimit>) -> Problem {
    // serde's own message (via axum's path tracking) names the field and the reason and quotes only the
    // client's input, so it is safe and useful to hand back; axum's prefix around it is not.
    let cause = rejection.source().map_or_else(
        || rejection.body_text(),
        |source| without_type_names(&source.to_string()),
    );
    match rejection {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::JsonSyntaxError(_) => Problem::new(
            types::MALFORMED_JSON,
            StatusCode::BAD_REQUEST,
            "Malformed JSON",
        )
        .detail(cause),
        JsonRejection::JsonDataError(_) => invalid_body(cause),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(limit),
        // The body could not be read (the client went away or sent broken framing).
        _ => Problem::bad_request("The request body could not be read."),
    }
}

/// 422 `invalid-body`: JSON of the wrong shape, `detail` saying where and why.
pub fn invalid_body(detail: impl Into<String>) -> Problem {
    Problem::new(
        types::INVALID_BODY,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid request body",
    )
    .detail(detail)
}

/// serde names the Rust type it expected ("expected struct NewTransfer"); the client needs the kind of
/// value, not our type's name, so the name after `struct` or `enum` is dropped.
pub fn without_type_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = ["struct ", "enum "]
        .iter()
        .filter_map(|keyword| rest.find(keyword).map(|at| (at, keyword.len())))
        .min()
    {
        let (start, keyword_len) = at;
        let after = &rest[start + keyword_len..];
        let name_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push_str(&rest[..start + keyword_len - 1]);
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

/// 415 `unsupported-media-type`.
pub fn unsupported_media_type() -> Problem {
    Problem::new(
        types::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported media type",
    )
    .detail("Expected a request with `Content-Type: application/json`.")
}

/// 413 `payload-too-large`, naming the limit when it is known.
pub(crate) fn payload_too_large(limit: Option<BodyLimit>) -> Problem {
    let problem = Problem::new(
        types::PAYLOAD_TOO_LARGE,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Payload too large",
    );
    match limit {
        Some(BodyLimit(bytes)) => problem
            .detail(format!(
                "The request body exceeds the limit of {bytes} bytes."
            ))
            .extension("limit_bytes", bytes),
        None => problem.detail("The request body exceeds the limit."),
    }
}

#[cfg(test)]
mod tests {
    use super::{has_nul_escape, without_type_names};

    #[test]
    fn only_an_escaped_nul_counts_as_nul() {
        assert!(has_nul_escape(br#"{"name":"a\u0000b"}"#));
        assert!(has_nul_escape(br#"{"name":"\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"name":"\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"name":"\u0001"}"#));
    }

    #[test]
    fn rust_type_names_are_dropped_from_serde_messages() {
        assert_eq!(
            without_type_names(
                "invalid type: string \"x\", expected struct NewTransfer at line 1 column 3"
            ),
            "invalid type: string \"x\", expected struct at line 1 column 3"
        );
        assert_eq!(
            without_type_names("data did not match any variant of untagged enum Leg"),
            "data did not match any variant of untagged enum"
        );
        assert_eq!(
            without_type_names("legs[0].side: unknown variant `up`, expected `debit` or `credit`"),
            "legs[0].side: unknown variant `up`, expected `debit` or `credit`"
        );
    }
}
