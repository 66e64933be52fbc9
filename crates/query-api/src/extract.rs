//! Request extractors of the query API: query strings (unknown parameters refused, so a typo such as
//! `asof=` cannot silently answer the current balance), the representation asked for, and
//! `Tally-Min-Version`.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::QueryError;

pub const MIN_VERSION_HEADER: &str = "tally-min-version";

/// `Tally-Min-Version` as the OpenAPI document states it; [`min_version`] reads it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct MinVersionHeader {
    /// Wait until the read model has reached this ledger version (a command answer's `version`); a
    /// version the ledger has not reached answers 409 `version-beyond-head` at once.
    #[param(rename = "Tally-Min-Version", minimum = 0)]
    pub min_version: Option<i64>,
}

/// A query string parsed into `T` (declare `T` with `#[serde(deny_unknown_fields)]`).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                Err(QueryError::invalid("query", reason))
            }
        }
    }
}

/// The representation of a statement or report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Ndjson,
}

impl Format {
    /// `format=` wins (a download link cannot set headers); then `Accept`.
    pub fn negotiate(format: Option<&str>, headers: &HeaderMap) -> Result<Self, QueryError> {
        match format {
            Some("json") => return Ok(Self::Json),
            Some("csv") => return Ok(Self::Csv),
            Some("ndjson") => return Ok(Self::Ndjson),
            Some(_) => {
                return Err(QueryError::invalid(
                    "format",
                    "expected json, csv or ndjson",
                ));
            }
            None => {}
        }
        let Some(accept) = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
        else {
            return Ok(Self::Json);
        };
        let types: Vec<&str> = accept
            .split(',')
            .map(|t| t.split(';').next().unwrap_or("").trim())
            .collect();
        if types.contains(&"text/csv") {
            Ok(Self::Csv)
        } else if types.contains(&"application/x-ndjson") {
            Ok(Self::Ndjson)
        } else if types
            .iter()
            .any(|t| matches!(*t, "application/json" | "application/*" | "*/*"))
        {
            Ok(Self::Json)
        } else {
            Err(QueryError::NotAcceptable(accept.to_owned()))
        }
    }
}

/// `Tally-Min-Version`: the ledger version a client has seen (a command answer's token) and wants
/// reflected.
pub fn min_version(headers: &HeaderMap) -> Result<Option<i64>, QueryError> {
    let Some(value) = headers.get(MIN_VERSION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| {
            QueryError::invalid(
                "Tally-Min-Version",
                "expected a ledger version, a non-negative integer",
            )
        })
}
