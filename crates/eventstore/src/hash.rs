//! The per-stream hash chain: the canonical byte encoding of an event, and `event_hash`.
//!
//! `hash = SHA-256(prev_hash ‖ canonical(event))`, where the first event of a stream chains from
//! [`GENESIS_HASH`] (32 zero bytes) and every later one from its predecessor's hash. Changing, removing or
//! reordering any recorded event changes every hash after it.
//!
//! `canonical(event)` is, in this order:
//!
//! | field            | encoding                                                              |
//! | ---------------- | --------------------------------------------------------------------- |
//! | domain tag       | the 14 bytes `tally.event.v1`, then a zero byte                       |
//! | `stream_id`      | string                                                                |
//! | `version`        | i64, big-endian                                                       |
//! | `event_id`       | the UUID's 16 bytes                                                   |
//! | `event_type`     | string                                                                |
//! | `schema_version` | i32, big-endian                                                       |
//! | `payload`        | string holding the canonical JSON of the payload                      |
//! | `metadata`       | string holding the canonical JSON of the metadata object as stored    |
//! | `recorded_at`    | i64, big-endian: microseconds since the Unix epoch (floor)            |
//! | `transfer_id`    | byte `0`, or byte `1` followed by the UUID's 16 bytes                 |
//!
//! A *string* is its UTF-8 length as a big-endian u64 followed by the UTF-8 bytes; the length prefix keeps
//! adjacent fields from running into each other.
//!
//! *Canonical JSON* is JSON text without whitespace in which
//! - object keys are sorted by their UTF-8 bytes (jsonb reorders keys, so insertion order cannot count);
//! - strings escape only `"` as `\"`, `\` as `\\` and U+0000..U+001F as `\u00xx` (lowercase hex), and
//!   carry every other character as itself;
//! - a number that is an integer in [-2^63, 2^64) is written as a plain decimal integer (so `1e3`,
//!   `1000.0` and `1000` agree, as they do once jsonb has stored them); any other number is the shortest
//!   text that reads back as the same f64, in exponent form (`1.5e-7`, `1e300`).
//!
//! The rules exist so that an event read back from jsonb re-hashes to the bytes that were hashed before it
//! was stored.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of the first event of every stream.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Names the encoding, so a future encoding can never produce the same bytes as this one.
const DOMAIN_TAG: &[u8] = b"tally.event.v1\0";

/// The fields of an event that the hash covers: everything but the position (the global order is not part
/// of a stream's history) and the hashes themselves.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub stream_id: &'a str,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    /// The payload's canonical JSON text (`canonical_json`, `to_canonical_string`).
    pub payload: &'a str,
    /// The canonical JSON text of the metadata object as stored (`EventMetadata::canonical_json`).
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub transfer_id: Option<Uuid>,
}

/// `SHA-256(prev_hash ‖ canonical_bytes(fields))`, fed to the hasher piece by piece rather than copied into
/// one buffer first.
pub fn event_hash(prev_hash: &[u8; 32], fields: &EventFields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    write_canonical(&mut hasher, fields);
    hasher.finalize().into()
}

/// The canonical encoding of an event, as described in the module documentation.
pub fn canonical_bytes(fields: &EventFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        DOMAIN_TAG.len()
            + fields.stream_id.len()
            + fields.event_type.len()
            + fields.payload.len()
            + fields.metadata.len()
            + 96,
    );
    write_canonical(&mut out, fields);
    out
}

/// Where the canonical bytes go: a buffer, or straight into the hasher.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

fn write_canonical(out: &mut impl Sink, fields: &EventFields<'_>) {
    out.put(DOMAIN_TAG);
    put_str(out, fields.stream_id);
    out.put(&fields.version.to_be_bytes());
    out.put(fields.event_id.as_bytes());
    put_str(out, fields.event_type);
    out.put(&fields.schema_version.to_be_bytes());
    put_str(out, fields.payload);
    put_str(out, fields.metadata);
    out.put(&fields.recorded_at.timestamp_micros().to_be_bytes());
    match fields.transfer_id {
        None => out.put(&[0]),
        Some(id) => {
            out.put(&[1]);
            out.put(id.as_bytes());
        }
    }
}

fn put_str(out: &mut impl Sink, text: &str) {
    // usize is at most 64 bits on every target Rust supports, so this never truncates.
    out.put(&(text.len() as u64).to_be_bytes());
    out.put(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::canonical_json;
    use chrono::TimeZone;
    use serde_json::{Value, json};

    fn fields<'a>(payload: &'a str, metadata: &'a str) -> EventFields<'a> {
        EventFields {
            stream_id: "ledger-1",
            version: 7,
            event_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            event_type: "TransferCreated",
            schema_version: 1,
            payload,
            metadata,
            recorded_at: Utc
                .timestamp_opt(1_700_000_000, 123_456_000)
                .single()
                .expect("valid timestamp"),
            transfer_id: Some(Uuid::from_u128(42)),
        }
    }

    fn sample_metadata() -> String {
        canonical(json!({"actor": "alice", "client": "cli"}))
    }

    fn canonical(value: Value) -> String {
        canonical_json(&value)
    }

    #[test]
    fn the_encoding_of_a_known_event_never_changes() {
        // Pins the encoding: recorded chains stop verifying if this changes, so a change needs a new tag.
        let payload = canonical(json!({"amount": "100", "legs": [1, 2]}));
        let metadata = sample_metadata();
        let hash = event_hash(&GENESIS_HASH, &fields(&payload, &metadata));
        assert_eq!(
            hex::encode(hash),
            "d98189109d19a56f5ce41d59b6a052178d202c2216df222faed7d82520642673"
        );
    }

    #[test]
    fn canonical_bytes_follow_the_documented_layout() {
        let payload = canonical(json!({"b": 1, "a": true}));
        let metadata = canonical(json!({"actor": "a", "client": "c"}));
        let bytes = canonical_bytes(&fields(&payload, &metadata));

        let mut expected = Vec::new();
        expected.extend_from_slice(b"tally.event.v1\0");
        expected.extend_from_slice(&8u64.to_be_bytes());
        expected.extend_from_slice(b"ledger-1");
        expected.extend_from_slice(&7i64.to_be_bytes());
        expected.extend_from_slice(&0x0123_4567_89ab_cdef_0123_4567_89ab_cdef_u128.to_be_bytes());
        expected.extend_from_slice(&15u64.to_be_bytes());
        expected.extend_from_slice(b"TransferCreated");
        expected.extend_from_slice(&1i32.to_be_bytes());
        let payload_text = br#"{"a":true,"b":1}"#;
        expected.extend_from_slice(&(payload_text.len() as u64).to_be_bytes());
        expected.extend_from_slice(payload_text);
        let metadata_text = br#"{"actor":"a","client":"c"}"#;
        expected.extend_from_slice(&(metadata_text.len() as u64).to_be_bytes());
        expected.extend_from_slice(metadata_text);
        expected.extend_from_slice(&1_700_000_000_123_456i64.to_be_bytes());
        expected.push(1);
        expected.extend_from_slice(&42u128.to_be_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn sub_microsecond_digits_do_not_reach_the_hash() {
        let payload = canonical(json!({}));
        let metadata = sample_metadata();
        let base = fields(&payload, &metadata);
        let finer = EventFields {
            recorded_at: base.recorded_at + chrono::Duration::nanoseconds(999),
            ..base
        };
        assert_eq!(canonical_bytes(&base), canonical_bytes(&finer));
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let payload = canonical(json!({"amount": "1"}));
        let other_payload = canonical(json!({"amount": "2"}));
        let metadata = sample_metadata();
        let other_metadata = canonical(json!({"actor": "mallory", "client": "cli"}));
        let base = fields(&payload, &metadata);
        let variants = [
            EventFields {
                stream_id: "ledger-2",
                ..base
            },
            EventFields { version: 8, ..base },
            EventFields {
                event_id: Uuid::from_u128(1),
                ..base
            },
            EventFields {
                event_type: "TransferPosted",
                ..base
            },
            EventFields {
                schema_version: 2,
                ..base
            },
            EventFields {
                payload: &other_payload,
                ..base
            },
            EventFields {
                metadata: &other_metadata,
                ..base
            },
            EventFields {
                recorded_at: base.recorded_at + chrono::Duration::microseconds(1),
                ..base
            },
            EventFields {
                transfer_id: None,
                ..base
            },
            EventFields {
                transfer_id: Some(Uuid::from_u128(43)),
                ..base
            },
        ];
        let base_hash = event_hash(&GENESIS_HASH, &base);
        for (i, variant) in variants.iter().enumerate() {
            assert_ne!(event_hash(&GENESIS_HASH, variant), base_hash, "variant {i}");
        }
        assert_ne!(event_hash(&[1; 32], &base), base_hash, "prev_hash");
    }

    #[test]
    fn length_prefixes_keep_adjacent_strings_apart() {
        let payload = canonical(json!({}));
        let metadata = sample_metadata();
        let base = fields(&payload, &metadata);
        let a = EventFields {
            stream_id: "ab",
            event_type: "c",
            ..base
        };
        let b = EventFields {
            stream_id: "a",
            event_type: "bc",
            ..base
        };
        assert_ne!(canonical_bytes(&a), canonical_bytes(&b));
    }
}
