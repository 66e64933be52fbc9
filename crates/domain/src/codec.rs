//! The event codec: how an [`Event`] is stored (its payload, schema version and type tag) and how a
//! stored event of any schema version this service has written is read back.
//!
//! The store keeps the type tag in a column of its own, so a payload is the event's content without it.
//! Encoding hands the store a [`Payload`], a `Serialize` view of that content, so the store can write its
//! canonical text straight from it; [`Event::to_payload`] is the same content as a `serde_json::Value`.

mod upcast;

pub use upcast::{UpcastError, Upcaster, Upcasters};

use crate::event::Event;
use chrono::{DateTime, Utc};
use serde::ser::{Impossible, Serialize, SerializeStruct, Serializer};

/// The field of an event's tagged form (`{"type": …, "data": …}`) that holds its content.
const CONTENT: &str = "data";

/// The parts of a stored event that decoding needs: older shapes may lean on the envelope.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub event_type: &'a str,
    pub schema_version: i32,
    pub recorded_at: DateTime<Utc>,
}

/// An event's stored payload, serialised from the event itself without its type tag and without an
/// intermediate `serde_json::Value`.
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a>(pub &'a Event);

impl Event {
    /// The shape version this code writes for an event type; older stored versions are upcast on read.
    pub fn current_schema_version(event_type: &str) -> i32 {
        match event_type {
            // v1 was the prototype shape: one currency per transfer and `memo` for the description.
            "TransferPosted" => 2,
            _ => 1,
        }
    }

    pub fn schema_version(&self) -> i32 {
        Self::current_schema_version(self.event_type())
    }

    /// The stored payload, ready to serialise (the store writes its canonical text from it).
    pub fn payload(&self) -> Payload<'_> {
        Payload(self)
    }

    /// The stored payload as a `serde_json::Value`.
    pub fn to_payload(&self) -> serde_json::Value {
        // Every variant is a struct of plain data, so serialisation cannot fail.
        serde_json::to_value(self.payload()).unwrap_or_default()
    }

    /// Decodes a stored event, upcasting older shapes with the production upcasters.
    pub fn decode(envelope: Envelope<'_>, payload: serde_json::Value) -> Result<Self, UpcastError> {
        Self::decode_with(&Upcasters::standard(), envelope, payload)
    }

    /// Decodes a stored event from its payload's JSON text. An event already in its type's current
    /// shape is read straight from the text, without building a `serde_json::Value`, since the bulk
    /// rebuild decodes every event of the store this way; older shapes go through [`Event::decode`].
    pub fn decode_str(envelope: Envelope<'_>, payload: &str) -> Result<Self, UpcastError> {
        let shape = |reason: String| UpcastError::Shape {
            event_type: envelope.event_type.to_owned(),
            reason,
        };
        if envelope.schema_version != Self::current_schema_version(envelope.event_type) {
            let payload = serde_json::from_str(payload).map_err(|e| shape(e.to_string()))?;
            return Self::decode(envelope, payload);
        }
        let tag = serde_json::to_string(envelope.event_type).map_err(|e| shape(e.to_string()))?;
        let tagged = format!(r#"{{"type":{tag},"{CONTENT}":{payload}}}"#);
        serde_json::from_str(&tagged).map_err(|e| shape(e.to_string()))
    }

    pub fn decode_with(
        upcasters: &Upcasters,
        envelope: Envelope<'_>,
        payload: serde_json::Value,
    ) -> Result<Self, UpcastError> {
        let current = Self::current_schema_version(envelope.event_type);
        let payload = upcasters.upcast(envelope, current, payload)?;
        let tagged = serde_json::json!({ "type": envelope.event_type, CONTENT: payload });
        serde_json::from_value(tagged).map_err(|e| UpcastError::Shape {
            event_type: envelope.event_type.to_owned(),
            reason: e.to_string(),
        })
    }
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(ContentOnly(serializer))
    }
}

/// A serializer that takes an event's tagged form, as its derived `Serialize` writes it (a struct of
/// `type` and `data`), and writes only the content to the serializer it wraps.
struct ContentOnly<S>(S);

/// The tagged form's struct: its `data` field goes to the wrapped serializer, its `type` nowhere.
struct ContentField<S: Serializer> {
    serializer: Option<S>,
    written: Option<S::Ok>,
}

impl<S: Serializer> SerializeStruct for ContentField<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        if key == CONTENT
            && let Some(serializer) = self.serializer.take()
        {
            self.written = Some(value.serialize(serializer)?);
        }
        Ok(())
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        match (self.written, self.serializer) {
            (Some(written), _) => Ok(written),
            // A variant without content (none exists today) is stored as `null`.
            (None, Some(serializer)) => serializer.serialize_unit(),
            (None, None) => Err(not_tagged()),
        }
    }
}

fn not_tagged<E: serde::ser::Error>() -> E {
    E::custom("an event serialises as a struct of its type and its content")
}

/// Serializer methods for shapes an event's tagged form never takes.
macro_rules! refuse_shapes {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $method(self, $(_: $arg),*) -> Result<S::Ok, S::Error> {
            Err(not_tagged())
        }
    )*};
}

impl<S: Serializer> Serializer for ContentOnly<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = ContentField<S>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<ContentField<S>, S::Error> {
        Ok(ContentField {
            serializer: Some(self.0),
            written: None,
        })
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    refuse_shapes!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_tagged())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_tagged())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_tagged())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_tagged())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_tagged())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_tagged())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_tagged())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_tagged())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_tagged())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountCode, CurrencyCode, Side};
    use crate::amount::Amount;
    use crate::command::{LegSpec, TransferSpec};
    use crate::transfer::TransferId;
    use chrono::TimeZone;

    #[test]
    fn a_payload_is_the_tagged_form_without_its_tag() {
        let at = Utc.timestamp_opt(1_700_000_000, 0).single().expect("time");
        let leg = |account: &str, side| LegSpec {
            account: AccountCode::parse(account).expect("code"),
            side,
            amount: Amount::new(5).expect("amount"),
            currency: CurrencyCode::parse("USD").expect("currency"),
        };
        let event = Event::TransferPosted {
            transfer: TransferSpec {
                id: TransferId(uuid::Uuid::from_u128(1)),
                legs: vec![
                    leg("assets:cash", Side::Debit),
                    leg("revenue", Side::Credit),
                ],
                effective_at: None,
                description: "lunch".into(),
                metadata: Default::default(),
                pending: None,
            },
            recorded_at: at,
            correction: None,
            balances: Vec::new(),
        };
        let tagged = serde_json::to_value(&event).expect("serialises");
        assert_eq!(event.to_payload(), tagged[CONTENT]);
        let text = serde_json::to_string(&event).expect("serialises");
        let content = text
            .strip_prefix(r#"{"type":"TransferPosted","data":"#)
            .and_then(|rest| rest.strip_suffix('}'));
        let payload = serde_json::to_string(&event.payload()).expect("serialises");
        assert_eq!(Some(payload.as_str()), content);
    }
}
