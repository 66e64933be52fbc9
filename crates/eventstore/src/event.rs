//! The event types that go into the store (`NewEvent`) and come out of it (`RecordedEvent`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::canonical::{CanonicalJson, canonical_json, write_string as write_canonical_string};
use crate::hash::{EventFields, event_hash};

/// Who did it, from where, and why. Stored as the `metadata` jsonb column and covered by the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The authenticated subject.
    pub actor: String,
    /// The client application the subject acted through.
    pub client: String,
    // Absent optional fields are left out of the JSON rather than written as null, so a field added later
    // does not change the bytes, and hence the hashes, of events recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// W3C trace context of the request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EventMetadata {
    /// The JSON object that is stored and hashed: the serde form, built by hand because it cannot fail.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("actor".to_owned(), Value::String(self.actor.clone()));
        map.insert("client".to_owned(), Value::String(self.client.clone()));
        let optional = [
            ("correlation_id", &self.correlation_id),
            ("causation_id", &self.causation_id),
            ("traceparent", &self.traceparent),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                map.insert(key.to_owned(), Value::String(value.clone()));
            }
        }
        Value::Object(map)
    }

    /// The canonical JSON text of [`EventMetadata::to_json`], written directly: the keys are fixed, so
    /// their order is known (`actor`, `causation_id`, `client`, `correlation_id`, `traceparent`).
    pub fn canonical_json(&self) -> String {
        let fields = [
            ("actor", Some(&self.actor)),
            ("causation_id", self.causation_id.as_ref()),
            ("client", Some(&self.client)),
            ("correlation_id", self.correlation_id.as_ref()),
            ("traceparent", self.traceparent.as_ref()),
        ];
        let mut out = String::with_capacity(96);
        out.push('{');
        for (key, value) in fields {
            let Some(value) = value else { continue };
            if out.len() > 1 {
                out.push(',');
            }
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            write_canonical_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

/// An event to append. The store assigns its position, version and hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    /// Canonical JSON, hashed and sent as it is.
    pub payload: CanonicalJson,
    pub metadata: EventMetadata,
    /// Stored with microsecond precision (Postgres' own); finer digits are dropped before hashing.
    pub recorded_at: DateTime<Utc>,
    /// Set on events that create a transfer: at most one event per stream may carry a given id.
    pub transfer_id: Option<Uuid>,
}

/// What replaying an event needs, with the payload as JSON text: for readers that go through whole
/// streams (the projector's bulk rebuild) and would otherwise pay for the metadata, the hashes and a
/// parsed `Value` they never use.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PayloadEvent {
    pub position: i64,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub recorded_at: DateTime<Utc>,
}

/// What publishing an event needs, with the payload as JSON text: the relay forwards it as it is, where
/// a parsed `Value` would be built only to be written out again.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PublishableEvent {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    #[sqlx(json)]
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

/// An event as recorded. Serialises with the hashes as lowercase hex, the form exports use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RecordedEvent {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    #[sqlx(json)]
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    pub transfer_id: Option<Uuid>,
    #[serde(with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

impl RecordedEvent {
    /// Recomputes this event's hash from its fields and the given predecessor hash, as `verify_stream`
    /// does; an exported stream verifies by chaining this from the genesis hash.
    pub fn recompute_hash(&self, prev_hash: &[u8; 32]) -> [u8; 32] {
        let payload = canonical_json(&self.payload);
        let metadata = self.metadata.canonical_json();
        event_hash(
            prev_hash,
            &EventFields {
                stream_id: &self.stream_id,
                version: self.version,
                event_id: self.event_id,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at: self.recorded_at,
                transfer_id: self.transfer_id,
            },
        )
    }
}

/// Serde for byte strings as lowercase hex.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        bytes: impl AsRef<[u8]>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}
