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
use serde_json::{Number, Value};
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
    pub payload: &'a Value,
    /// The metadata object as stored (see `EventMetadata::to_json`).
    pub metadata: &'a Value,
    pub recorded_at: DateTime<Utc>,
    pub transfer_id: Option<Uuid>,
}

/// `SHA-256(prev_hash ‖ canonical_bytes(fields))`.
pub fn event_hash(prev_hash: &[u8; 32], fields: &EventFields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical_bytes(fields));
    hasher.finalize().into()
}

/// The canonical encoding of an event, as described in the module documentation.
pub fn canonical_bytes(fields: &EventFields<'_>) -> Vec<u8> {
    let payload = canonical_json(fields.payload);
    let metadata = canonical_json(fields.metadata);
    let mut out = Vec::with_capacity(
        DOMAIN_TAG.len()
            + fields.stream_id.len()
            + fields.event_type.len()
            + payload.len()
            + metadata.len()
            + 96,
    );
    out.extend_from_slice(DOMAIN_TAG);
    put_str(&mut out, fields.stream_id);
    out.extend_from_slice(&fields.version.to_be_bytes());
    out.extend_from_slice(fields.event_id.as_bytes());
    put_str(&mut out, fields.event_type);
    out.extend_from_slice(&fields.schema_version.to_be_bytes());
    put_str(&mut out, &payload);
    put_str(&mut out, &metadata);
    out.extend_from_slice(&fields.recorded_at.timestamp_micros().to_be_bytes());
    match fields.transfer_id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(id.as_bytes());
        }
    }
    out
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    // usize is at most 64 bits on every target Rust supports, so this never truncates.
    out.extend_from_slice(&(text.len() as u64).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Canonical JSON text of `value`, as described in the module documentation.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here rather than trusting the map: with serde_json's `preserve_order` feature switched
            // on anywhere in the build, the map would keep insertion order.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, number: &Number) {
    // 2^63 and 2^64 are exact in f64.
    const MIN_INTEGER: f64 = -9_223_372_036_854_775_808.0;
    const END_INTEGER: f64 = 18_446_744_073_709_551_616.0;
    if let Some(n) = number.as_i64() {
        out.push_str(&n.to_string());
    } else if let Some(n) = number.as_u64() {
        out.push_str(&n.to_string());
    } else if let Some(f) = number.as_f64() {
        // jsonb prints an integral float without a fraction (or keeps `.0`), and serde_json reads such
        // text back as an integer when it fits: writing integral values as integers makes both agree.
        if f.fract() == 0.0 && (MIN_INTEGER..END_INTEGER).contains(&f) {
            out.push_str(&(f as i128).to_string());
        } else {
            out.push_str(&format!("{f:e}"));
        }
    } else {
        // Only reachable with serde_json's `arbitrary_precision`, for numbers beyond f64.
        out.push_str(&number.to_string());
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn fields<'a>(payload: &'a Value, metadata: &'a Value) -> EventFields<'a> {
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

    fn sample_metadata() -> Value {
        json!({"actor": "alice", "client": "cli"})
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("test JSON parses")
    }

    #[test]
    fn the_encoding_of_a_known_event_never_changes() {
        // Pins the encoding: recorded chains stop verifying if this changes, so a change needs a new tag.
        let payload = json!({"amount": "100", "legs": [1, 2]});
        let metadata = sample_metadata();
        let hash = event_hash(&GENESIS_HASH, &fields(&payload, &metadata));
        assert_eq!(
            hex::encode(hash),
            "d98189109d19a56f5ce41d59b6a052178d202c2216df222faed7d82520642673"
        );
    }

    #[test]
    fn canonical_bytes_follow_the_documented_layout() {
        let payload = json!({"b": 1, "a": true});
        let metadata = json!({"actor": "a", "client": "c"});
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
    fn object_keys_are_sorted_at_every_depth() {
        let value = parse(r#"{"b": {"z": 1, "a": [ {"y": null, "x": false} ]}, "a": "s"}"#);
        assert_eq!(
            canonical_json(&value),
            r#"{"a":"s","b":{"a":[{"x":false,"y":null}],"z":1}}"#
        );
    }

    #[test]
    fn keys_sort_by_bytes_not_by_length_as_jsonb_does() {
        let value = parse(r#"{"bb": 1, "a": 2, "B": 3}"#);
        assert_eq!(canonical_json(&value), r#"{"B":3,"a":2,"bb":1}"#);
    }

    #[test]
    fn integral_numbers_have_one_form_however_they_were_written() {
        for text in ["1000", "1000.0", "1e3", "1E+3", "1000.000"] {
            assert_eq!(canonical_json(&parse(text)), "1000", "{text}");
        }
        // jsonb prints 1e15 as a plain integer, which serde_json then reads as u64.
        assert_eq!(
            canonical_json(&parse("1e15")),
            canonical_json(&parse("1000000000000000"))
        );
        assert_eq!(canonical_json(&parse("-0.0")), "0");
        assert_eq!(
            canonical_json(&parse("-9223372036854775808")),
            "-9223372036854775808"
        );
        assert_eq!(
            canonical_json(&parse("18446744073709551615")),
            "18446744073709551615"
        );
    }

    #[test]
    fn fractions_and_huge_numbers_use_shortest_exponent_form() {
        assert_eq!(canonical_json(&parse("0.1")), "1e-1");
        assert_eq!(canonical_json(&parse("1.5e-7")), "1.5e-7");
        assert_eq!(canonical_json(&parse("0.00000015")), "1.5e-7");
        assert_eq!(canonical_json(&parse("-2.5")), "-2.5e0");
        assert_eq!(canonical_json(&parse("1e300")), "1e300");
        // 2^64 no longer fits an integer, as jsonb's plain-digit output of it would not either.
        assert_eq!(
            canonical_json(&parse("18446744073709551616")),
            "1.8446744073709552e19"
        );
    }

    #[test]
    fn strings_escape_only_quotes_backslashes_and_control_characters() {
        let value = Value::String("a\"b\\c\n\t\u{1}é€/😀\u{7f}".to_owned());
        assert_eq!(
            canonical_json(&value),
            "\"a\\\"b\\\\c\\u000a\\u0009\\u0001é€/😀\u{7f}\""
        );
    }

    #[test]
    fn sub_microsecond_digits_do_not_reach_the_hash() {
        let payload = json!({});
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
        let payload = json!({"amount": "1"});
        let other_payload = json!({"amount": "2"});
        let metadata = sample_metadata();
        let other_metadata = json!({"actor": "mallory", "client": "cli"});
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
        let payload = json!({});
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
