//! Query parameters: instants (`as_of`, `from`, `to`), `known_at`, page sizes and opaque cursors.
//! Each parser names the parameter it refuses, so the 400 says which one to fix.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::error::QueryError;
use crate::read::EntryPosition;

/// Page sizes: enough for a screen or a report page; bigger reads go through the CSV/NDJSON exports.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

// The schemas the OpenAPI document states for these parameters, so it refuses what the parsers refuse.

fn string_of(format: KnownFormat) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(format)))
}

/// `as_of`, `from`, `to`: an RFC 3339 timestamp or a date.
pub fn instant_schema() -> impl Into<RefOr<Schema>> {
    OneOfBuilder::new()
        .item(string_of(KnownFormat::DateTime))
        .item(string_of(KnownFormat::Date))
}

/// A day, `YYYY-MM-DD`.
pub fn day_schema() -> impl Into<RefOr<Schema>> {
    string_of(KnownFormat::Date)
}

/// `known_at`: a ledger version (decimal digits, within 64 bits), an RFC 3339 timestamp or a date.
pub fn known_at_schema() -> impl Into<RefOr<Schema>> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]{1,18}$")),
        )
        .item(string_of(KnownFormat::DateTime))
        .item(string_of(KnownFormat::Date))
}

/// `cursor`: the `next_cursor` of the previous page, unchanged (URL-safe base64).
pub fn cursor_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
}

/// `format`: the representation, where the route offers more than JSON.
pub fn format_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["json", "csv", "ndjson"]))
}

/// An account code: whole segments of `a-z 0-9 _ -` separated by `:`.
pub fn code_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(128))
        .pattern(Some("^[a-z0-9_-]+(:[a-z0-9_-]+){0,9}$"))
}

/// `prefix`: whole segments of an account code, optionally ending in `:`.
pub fn prefix_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(129))
        .pattern(Some("^[a-z0-9_-]+(:[a-z0-9_-]+){0,9}:?$"))
}

/// `limit`: a page size.
pub fn limit_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_LIMIT))
}

/// `bucket` of the volume report.
pub fn bucket_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["day", "week", "month"]))
}

/// `status` of the transfer listing.
pub fn transfer_status_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["posted", "pending", "voided", "expired", "reversed"]))
}

/// A ledger version given as a query parameter (`after`).
pub fn version_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
}

/// An instant given as RFC 3339 (`2026-03-31T12:00:00Z`) or as a day (`2026-03-31`, meaning the end of
/// that day in UTC, so "the balance on 31 March" includes everything effective on 31 March).
pub fn end_instant(field: &str, raw: &str) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let next = day
            .checked_add_days(Days::new(1))
            .ok_or_else(|| QueryError::invalid(field, "date out of range"))?;
        return Ok(next.and_time(chrono::NaiveTime::MIN).and_utc() - TimeDelta::microseconds(1));
    }
    instant(field, raw)
}

/// [`known_at`] of an optional parameter.
pub fn optional_known_at(raw: Option<&str>) -> Result<Option<KnownAt>, QueryError> {
    raw.map(known_at).transpose()
}

/// [`start_instant`] of an optional parameter.
pub fn optional_start(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, QueryError> {
    raw.map(|raw| start_instant(field, raw)).transpose()
}

/// [`end_instant`] of an optional parameter.
pub fn optional_end(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, QueryError> {
    raw.map(|raw| end_instant(field, raw)).transpose()
}

/// An instant where a day means its start (`from=2026-03-01` includes all of 1 March).
pub fn start_instant(field: &str, raw: &str) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    instant(field, raw)
}

fn instant(field: &str, raw: &str) -> Result<DateTime<Utc>, QueryError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            QueryError::invalid(
                field,
                "expected an RFC 3339 timestamp (2026-03-31T12:00:00Z) or a date (2026-03-31)",
            )
        })
}

/// `known_at`: what the ledger knew at a version (`42`) or at an instant (the latest version recorded
/// by then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownAt {
    Version(i64),
    Instant(DateTime<Utc>),
}

pub fn known_at(raw: &str) -> Result<KnownAt, QueryError> {
    if raw.bytes().all(|b| b.is_ascii_digit()) && !raw.is_empty() {
        return raw
            .parse::<i64>()
            .map(KnownAt::Version)
            .map_err(|_| QueryError::invalid("known_at", "version out of range"));
    }
    end_instant("known_at", raw).map(KnownAt::Instant)
}

pub fn limit(raw: Option<&str>) -> Result<i64, QueryError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(QueryError::invalid(
            "limit",
            format!("must be an integer from 1 to {MAX_LIMIT}"),
        )),
    }
}

/// A position in one listing. The kind is part of the encoding, so a cursor of one listing is refused
/// by another instead of silently meaning something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Statements: after the entry at (effective_at, version, leg).
    Entry {
        effective_at: DateTime<Utc>,
        version: i64,
        leg: i32,
    },
    /// Account listings: after this code.
    Account(String),
    /// Transfer listings (newest first): before this creating version.
    Transfer(i64),
}

impl From<EntryPosition> for Cursor {
    fn from(position: EntryPosition) -> Self {
        Cursor::Entry {
            effective_at: position.effective_at,
            version: position.version,
            leg: position.leg,
        }
    }
}

impl Cursor {
    /// The cursor of the page after `items`: after its last item, if the page is full (a shorter page
    /// is the last one).
    pub fn after_page<T>(
        items: &[T],
        limit: i64,
        cursor: impl FnOnce(&T) -> Cursor,
    ) -> Option<String> {
        let full = i64::try_from(items.len()).is_ok_and(|len| len == limit);
        items
            .last()
            .filter(|_| full)
            .map(|item| cursor(item).encode())
    }

    pub fn encode(&self) -> String {
        let text = match self {
            Cursor::Entry {
                effective_at,
                version,
                leg,
            } => format!("e|{}|{version}|{leg}", effective_at.timestamp_micros()),
            Cursor::Account(code) => format!("a|{code}"),
            Cursor::Transfer(version) => format!("t|{version}"),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('|');
        let cursor = match parts.next()? {
            "e" => Cursor::Entry {
                effective_at: DateTime::from_timestamp_micros(parts.next()?.parse().ok()?)?,
                version: parts.next()?.parse().ok()?,
                leg: parts.next()?.parse().ok()?,
            },
            "a" => Cursor::Account(parts.next()?.to_owned()),
            "t" => Cursor::Transfer(parts.next()?.parse().ok()?),
            _ => return None,
        };
        parts.next().is_none().then_some(cursor)
    }
}

fn bad_cursor() -> QueryError {
    QueryError::invalid(
        "cursor",
        "not a cursor of this listing; pass back `next_cursor` unchanged",
    )
}

pub fn entry_cursor(raw: Option<&str>) -> Result<Option<EntryPosition>, QueryError> {
    match raw.map(Cursor::decode) {
        None => Ok(None),
        Some(Some(Cursor::Entry {
            effective_at,
            version,
            leg,
        })) => Ok(Some(EntryPosition {
            effective_at,
            version,
            leg,
        })),
        Some(_) => Err(bad_cursor()),
    }
}

pub fn account_cursor(raw: Option<&str>) -> Result<Option<String>, QueryError> {
    match raw.map(Cursor::decode) {
        None => Ok(None),
        Some(Some(Cursor::Account(code))) => Ok(Some(code)),
        Some(_) => Err(bad_cursor()),
    }
}

pub fn transfer_cursor(raw: Option<&str>) -> Result<Option<i64>, QueryError> {
    match raw.map(Cursor::decode) {
        None => Ok(None),
        Some(Some(Cursor::Transfer(version))) => Ok(Some(version)),
        Some(_) => Err(bad_cursor()),
    }
}

/// A prefix of account codes: whole segments, optionally ending in ':' (`assets`, `assets:`,
/// `assets:cash`). `assets` matches `assets` and everything below it, not `assets-other`.
pub fn prefix(raw: &str) -> Result<String, QueryError> {
    let trimmed = raw.strip_suffix(':').unwrap_or(raw);
    tally_domain::AccountCode::parse(trimmed)
        .map(|code| code.as_str().to_owned())
        .map_err(|e| QueryError::invalid("prefix", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_listings() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid");
        let entry = Cursor::Entry {
            effective_at: at,
            version: 7,
            leg: 1,
        };
        assert_eq!(
            entry_cursor(Some(&entry.encode())).expect("valid"),
            Some(EntryPosition {
                effective_at: at,
                version: 7,
                leg: 1
            })
        );
        assert!(transfer_cursor(Some(&entry.encode())).is_err());
        assert!(entry_cursor(Some("not base64!")).is_err());
        assert!(entry_cursor(Some(&URL_SAFE_NO_PAD.encode("e|1|2|3|4"))).is_err());
        assert_eq!(
            account_cursor(Some(&Cursor::Account("a:b".into()).encode())).expect("valid"),
            Some("a:b".into())
        );
    }

    #[test]
    fn days_mean_the_end_or_the_start_of_the_day() {
        let end = end_instant("as_of", "2026-03-31").expect("valid");
        assert_eq!(end.to_rfc3339(), "2026-03-31T23:59:59.999999+00:00");
        let start = start_instant("from", "2026-03-01").expect("valid");
        assert_eq!(start.to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert!(end_instant("as_of", "31/03/2026").is_err());
        assert_eq!(known_at("12").expect("valid"), KnownAt::Version(12));
        assert!(known_at("99999999999999999999").is_err());
        assert!(matches!(known_at("2026-04-05"), Ok(KnownAt::Instant(_))));
    }

    #[test]
    fn limits_and_prefixes_are_bounded() {
        assert_eq!(limit(None).expect("default"), DEFAULT_LIMIT);
        assert!(limit(Some("0")).is_err());
        assert!(limit(Some("1001")).is_err());
        assert!(limit(Some("ten")).is_err());
        assert_eq!(prefix("assets:").expect("valid"), "assets");
        assert!(prefix("Assets").is_err());
        assert!(prefix("assets%").is_err());
    }
}
