//! Events as the projector reads them, from a message or from the store, and their decoding.

use crate::error::ProjectionError;
use chrono::{DateTime, Utc};
use tally_domain::{Envelope, Event};
use tally_eventstore::PayloadEvent;
use tally_messaging::ReceivedEvent;

/// What projecting needs of a stored event, whether it came from the broker or the store.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub version: i64,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    pub schema_version: i32,
    /// The payload as JSON text, parsed once, straight into the event.
    pub payload: Box<str>,
}

impl From<ReceivedEvent> for StoredEvent {
    fn from(e: ReceivedEvent) -> Self {
        Self {
            version: e.version,
            position: e.position,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload.into(),
        }
    }
}

impl From<PayloadEvent> for StoredEvent {
    fn from(e: PayloadEvent) -> Self {
        Self {
            version: e.version,
            position: e.position,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload.into_boxed_str(),
        }
    }
}

/// Where an event sits in its stream, and when it was recorded.
pub(crate) struct At {
    pub version: i64,
    pub recorded_at: DateTime<Utc>,
}

/// An event still in its stored form: the live path holds [`StoredEvent`]s, the rebuild the store's
/// pages as they were read.
pub(crate) trait Encoded {
    fn at(&self) -> At;
    fn position(&self) -> i64;
    fn envelope(&self) -> Envelope<'_>;
    fn payload(&self) -> &str;
}

/// The one implementation of [`Encoded`] for types that hold the same fields.
macro_rules! encoded {
    ($type:ty) => {
        impl Encoded for $type {
            fn at(&self) -> At {
                At {
                    version: self.version,
                    recorded_at: self.recorded_at,
                }
            }

            fn position(&self) -> i64 {
                self.position
            }

            fn envelope(&self) -> Envelope<'_> {
                Envelope {
                    event_type: &self.event_type,
                    schema_version: self.schema_version,
                    recorded_at: self.recorded_at,
                }
            }

            fn payload(&self) -> &str {
                &self.payload
            }
        }
    };
}

encoded!(StoredEvent);
encoded!(PayloadEvent);

/// An event decoded, with where it sits in its stream and in the log.
pub(crate) struct Decoded {
    pub at: At,
    pub position: i64,
    pub event: Event,
}

/// Parses `stored`, an event of `ledger`, upcasting older schema versions.
pub(crate) fn decode(ledger: &str, stored: &impl Encoded) -> Result<Decoded, ProjectionError> {
    let at = stored.at();
    let event = Event::decode_str(stored.envelope(), stored.payload()).map_err(|e| {
        ProjectionError::Undecodable {
            ledger: ledger.to_owned(),
            version: at.version,
            reason: e.to_string(),
        }
    })?;
    Ok(Decoded {
        at,
        position: stored.position(),
        event,
    })
}
