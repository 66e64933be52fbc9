//! The message format on `tally.events`: a run of consecutive events of one ledger.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tally_eventstore::{EventMetadata, PublishableEvent};
use uuid::Uuid;

/// One message: consecutive events of one ledger in version order. Batching events into one message is
/// what keeps the broker's confirmed-publish rate from capping the ledger's write rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventBatch {
    pub ledger: String,
    pub events: Vec<PublishedEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedEvent {
    pub position: i64,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    /// The stored payload's JSON text, forwarded without being parsed.
    pub payload: Box<RawValue>,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

/// A message as a consumer reads it: the payloads stay raw JSON text, so a consumer that decodes them
/// parses each once, straight into its own types, and one that needs only the versions never builds them.
/// Fields a consumer has no use for (event ids, metadata) are skipped.
#[derive(Debug, Deserialize)]
pub struct ReceivedBatch {
    pub ledger: String,
    pub events: Vec<ReceivedEvent>,
}

#[derive(Debug, Deserialize)]
pub struct ReceivedEvent {
    pub position: i64,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Box<RawValue>,
    pub recorded_at: DateTime<Utc>,
}

impl ReceivedBatch {
    pub fn last_version(&self) -> i64 {
        self.events.last().map_or(0, |e| e.version)
    }
}

impl TryFrom<PublishableEvent> for PublishedEvent {
    type Error = serde_json::Error;

    /// Fails only if the stored payload were not JSON, which PostgreSQL's `jsonb` rules out.
    fn try_from(e: PublishableEvent) -> Result<Self, Self::Error> {
        Ok(Self {
            position: e.position,
            version: e.version,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: RawValue::from_string(e.payload)?,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
        })
    }
}

impl EventBatch {
    pub fn first_version(&self) -> i64 {
        self.events.first().map_or(0, |e| e.version)
    }

    pub fn last_version(&self) -> i64 {
        self.events.last().map_or(0, |e| e.version)
    }
}

/// `<ledger>.<event_type>`: consumers bind by ledger (`main.#`) or by kind (`*.TransferPosted`).
pub fn routing_key(ledger: &str, event_type: &str) -> String {
    format!("{ledger}.{event_type}")
}

/// Splits a page of the global log into messages: a new message starts where the ledger or the event
/// type changes, or when one reaches `max_events`.
pub fn runs(
    events: Vec<PublishableEvent>,
    max_events: usize,
) -> Result<Vec<EventBatch>, serde_json::Error> {
    let mut out: Vec<EventBatch> = Vec::new();
    for event in events {
        let extend = out.last().is_some_and(|b| {
            b.ledger == event.stream_id
                && b.events.len() < max_events
                && b.events.last().is_some_and(|l| {
                    l.event_type == event.event_type && l.version + 1 == event.version
                })
        });
        if extend {
            if let Some(batch) = out.last_mut() {
                batch.events.push(event.try_into()?);
            }
        } else {
            out.push(EventBatch {
                ledger: event.stream_id.clone(),
                events: vec![event.try_into()?],
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(stream: &str, version: i64, event_type: &str) -> PublishableEvent {
        PublishableEvent {
            position: version,
            stream_id: stream.into(),
            version,
            event_id: Uuid::nil(),
            event_type: event_type.into(),
            schema_version: 1,
            payload: "null".into(),
            metadata: EventMetadata {
                actor: "a".into(),
                client: "c".into(),
                correlation_id: None,
                causation_id: None,
                traceparent: None,
            },
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_message_is_a_run_of_one_ledger_and_one_event_type() {
        let page = vec![
            recorded("a", 1, "T"),
            recorded("a", 2, "T"),
            recorded("b", 1, "T"),
            recorded("a", 3, "T"),
            recorded("a", 4, "U"),
            recorded("a", 5, "U"),
            recorded("a", 6, "U"),
        ];
        let shape: Vec<(String, Vec<i64>)> = runs(page, 2)
            .expect("JSON payloads")
            .into_iter()
            .map(|b| {
                (
                    b.ledger.clone(),
                    b.events.iter().map(|e| e.version).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a".to_owned(), vec![1, 2]),
                ("b".to_owned(), vec![1]),
                ("a".to_owned(), vec![3]),
                ("a".to_owned(), vec![4, 5]),
                ("a".to_owned(), vec![6]),
            ]
        );
        assert_eq!(routing_key("main", "TransferPosted"), "main.TransferPosted");
    }

    #[test]
    fn a_consumer_reads_what_the_relay_publishes_with_each_payload_as_it_was() {
        let payloads = [
            serde_json::json!({"id": "t-1", "legs": [{"amount": "12"}], "note": "é\"q"}),
            serde_json::json!({"id": "t-2", "legs": []}),
        ];
        let mut first = recorded("main", 7, "TransferPosted");
        first.payload = payloads[0].to_string();
        let mut second = recorded("main", 8, "TransferPosted");
        second.payload = payloads[1].to_string();
        let batches = runs(vec![first, second], 10).expect("JSON payloads");
        let wire = serde_json::to_vec(&batches[0]).expect("serialises");
        let received: ReceivedBatch = serde_json::from_slice(&wire).expect("parses");
        assert_eq!(received.ledger, "main");
        assert_eq!(received.last_version(), 8);
        let versions: Vec<i64> = received.events.iter().map(|e| e.version).collect();
        assert_eq!(versions, vec![7, 8]);
        for (event, payload) in received.events.iter().zip(&payloads) {
            assert_eq!(event.event_type, "TransferPosted");
            let parsed: serde_json::Value =
                serde_json::from_str(event.payload.get()).expect("payload is JSON");
            assert_eq!(&parsed, payload);
        }
    }
}
