//! The answer cache: JSON bodies keyed by ledger and request, each stamped with the ledger version it was
//! read at. An entry is served only while no newer version of its ledger is known ([`crate::versions`]),
//! unless it is immutable (a past instant as known at a fixed version, or inside a closed period).
//! While the invalidation stream is down nothing is served from the cache, so a lost message can never
//! leave a stale answer behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::Counter;
use moka::sync::Cache;

use crate::versions::LedgerClock;

/// The header carrying the ledger version an answer was read at (also the `ETag`).
pub const VERSION_HEADER: &str = "tally-version";
static VERSION_NAME: HeaderName = HeaderName::from_static(VERSION_HEADER);

/// How long a client may reuse an answer without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The answer changes with the ledger: clients revalidate with `If-None-Match` every time.
    Revalidate,
    /// Nothing can change the answer any more: what was known at a fixed version, or a balance inside a
    /// closed period.
    Immutable,
}

impl Freshness {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Freshness::Revalidate => "private, no-cache",
            Freshness::Immutable => "private, max-age=31536000, immutable",
        })
    }
}

/// A JSON answer and what it was read at.
#[derive(Debug, Clone)]
pub struct Answer {
    pub version: i64,
    pub body: Bytes,
    pub freshness: Freshness,
    /// The header values, built once here rather than on every hit.
    etag: HeaderValue,
    version_header: HeaderValue,
}

impl Answer {
    pub fn json<T: serde::Serialize>(
        version: i64,
        value: &T,
        freshness: Freshness,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            version,
            body: Bytes::from(serde_json::to_vec(value)?),
            freshness,
            // Digits and quotes only: always a valid header value.
            etag: HeaderValue::from_str(&format!("\"{version}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\"")),
            version_header: HeaderValue::from(version),
        })
    }

    /// 200 with the body, or 304 when the client's `If-None-Match` already names this version.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let etag = &self.etag;
        let matches = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes());
        let mut response = if matches {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = self.body.clone().into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag.clone());
        headers.insert(header::CACHE_CONTROL, self.freshness.header());
        headers.insert(VERSION_NAME.clone(), self.version_header.clone());
        response
    }
}

#[derive(Clone)]
pub struct AnswerCache {
    entries: Cache<String, Arc<Answer>>,
    /// True while the invalidation stream is consuming; the cache is bypassed otherwise.
    live: Arc<AtomicBool>,
    counted: Outcomes,
}

/// `tally_query_cache_requests_total` by result, looked up once: finding a series by its labels on
/// every read cost more than the cache lookup itself.
#[derive(Clone)]
struct Outcomes {
    hit: Counter,
    miss: Counter,
    bypass: Counter,
}

impl Outcomes {
    fn new() -> Self {
        // Handles taken before the recorder exists would count into nothing.
        tally_server::metrics::install();
        let counter = |result: &'static str| metrics::counter!("tally_query_cache_requests_total", "result" => result);
        Self {
            hit: counter("hit"),
            miss: counter("miss"),
            bypass: counter("bypass"),
        }
    }
}

impl AnswerCache {
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, answer: &Arc<Answer>| {
                    u32::try_from(key.len() + answer.body.len() + 64).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
            live: Arc::new(AtomicBool::new(false)),
            counted: Outcomes::new(),
        }
    }

    /// Called by the invalidation consumer: on (re)connect everything cached may have missed messages.
    pub fn set_live(&self, live: bool) {
        if !live || !self.live.load(Ordering::Acquire) {
            self.entries.invalidate_all();
        }
        self.live.store(live, Ordering::Release);
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &str, clock: Option<&LedgerClock>) -> Option<Arc<Answer>> {
        if !self.is_live() {
            self.counted.bypass.increment(1);
            return None;
        }
        let answer = self.entries.get(key);
        let fresh = answer.filter(|answer| {
            answer.freshness == Freshness::Immutable
                || clock.is_some_and(|clock| answer.version >= clock.current())
        });
        if fresh.is_some() {
            self.counted.hit.increment(1);
        } else {
            self.counted.miss.increment(1);
        }
        fresh
    }

    pub fn put(&self, key: String, answer: Arc<Answer>, clock: &LedgerClock) {
        // An answer already behind a known version would only be refused by the next `get`.
        if self.is_live()
            && (answer.freshness == Freshness::Immutable || answer.version >= clock.current())
        {
            self.entries.insert(key, answer);
        }
    }
}
