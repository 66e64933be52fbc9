//! Request extractors: the JSON body (naming the offending field in shape errors) and an optional body.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use tally_server::{ApiJson, Problem};

/// A JSON request body. Rejections are the problems of [`ApiJson`]; a shape error (`invalid-body`)
/// additionally carries the JSON path it names as `field`, like a domain rule does.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match ApiJson::<T>::from_request(request, state).await {
            Ok(ApiJson(value)) => Ok(Self(value)),
            Err(problem) => Err(with_field(problem)),
        }
    }
}

/// A JSON body that may be left out entirely (no `Content-Type` and no bytes): then `T::default()`.
#[derive(Debug)]
pub struct OptionalBody<T>(pub T);

impl<T, S> FromRequest<S> for OptionalBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if request.headers().contains_key(header::CONTENT_TYPE) {
            return Body::<T>::from_request(request, state)
                .await
                .map(|Body(value)| Self(value));
        }
        // Without a content type only an empty body is acceptable; anything else is unlabelled data.
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| Problem::bad_request("The request body could not be read."))?;
        if bytes.is_empty() {
            Ok(Self(T::default()))
        } else {
            Err(tally_server::json::unsupported_media_type())
        }
    }
}

/// serde's messages start with the path (`legs[0].amount: invalid type: ...`); the path becomes `field`.
fn with_field(problem: Problem) -> Problem {
    let is_shape_error = problem.type_.ends_with("/invalid-body");
    let field = problem
        .detail
        .as_deref()
        .and_then(|detail| detail.split_once(": "))
        .map(|(path, _)| path)
        .filter(|path| !path.is_empty() && *path != "." && !path.contains(char::is_whitespace))
        .map(str::to_owned);
    match (is_shape_error, field) {
        (true, Some(field)) => problem.extension("field", field),
        _ => problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn a_shape_error_names_its_field() {
        let problem = Problem::new("invalid-body", StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
            .detail(
                "legs[0].amount: invalid type: integer `5`, expected a string at line 1 column 9",
            );
        assert_eq!(with_field(problem).extensions["field"], "legs[0].amount");
    }
}
