//! Upcasting: turns stored payloads of older schema versions into the current shape, so old streams
//! stay readable forever without rewriting history.

use crate::codec::Envelope;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("{event_type} v{version} is newer than this build understands (v{current})")]
    FromTheFuture {
        event_type: String,
        version: i32,
        current: i32,
    },
    #[error("no upcaster from {event_type} v{version}")]
    MissingStep { event_type: String, version: i32 },
    #[error("{event_type}: {reason}")]
    Shape { event_type: String, reason: String },
}

/// One step: turns `event_type` at `from_version` into `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: i32,
    pub step: fn(Value, &Envelope<'_>) -> Result<Value, String>,
}

/// The set of steps, applied in order until the payload reaches the current version.
pub struct Upcasters(Vec<Upcaster>);

impl Upcasters {
    pub fn new(steps: Vec<Upcaster>) -> Self {
        Self(steps)
    }

    /// The steps for every shape this service has ever written.
    pub fn standard() -> Self {
        Self(vec![Upcaster {
            event_type: "TransferPosted",
            from_version: 1,
            step: transfer_posted_v1_to_v2,
        }])
    }

    pub fn upcast(
        &self,
        envelope: Envelope<'_>,
        current: i32,
        mut payload: Value,
    ) -> Result<Value, UpcastError> {
        let mut version = envelope.schema_version;
        if version > current {
            return Err(UpcastError::FromTheFuture {
                event_type: envelope.event_type.to_owned(),
                version,
                current,
            });
        }
        while version < current {
            let step = self
                .0
                .iter()
                .find(|u| u.event_type == envelope.event_type && u.from_version == version)
                .ok_or_else(|| UpcastError::MissingStep {
                    event_type: envelope.event_type.to_owned(),
                    version,
                })?;
            payload = (step.step)(payload, &envelope).map_err(|reason| UpcastError::Shape {
                event_type: envelope.event_type.to_owned(),
                reason,
            })?;
            version += 1;
        }
        Ok(payload)
    }
}

/// v1 carried one `currency` for the whole transfer, the id as `transfer_id`, the description as `memo`,
/// and relied on the envelope for the recorded time.
fn transfer_posted_v1_to_v2(payload: Value, envelope: &Envelope<'_>) -> Result<Value, String> {
    let Value::Object(mut v1) = payload else {
        return Err("expected an object".into());
    };
    let mut take = |key: &str| {
        v1.remove(key)
            .ok_or_else(|| format!("v1 field `{key}` missing"))
    };
    let id = take("transfer_id")?;
    let currency = take("currency")?;
    let Value::Array(legs) = take("legs")? else {
        return Err("v1 field `legs` is not an array".into());
    };
    let memo = v1.remove("memo").unwrap_or(Value::String(String::new()));
    let legs = legs
        .into_iter()
        .map(|leg| match leg {
            Value::Object(mut leg) => {
                leg.insert("currency".into(), currency.clone());
                Ok(Value::Object(leg))
            }
            _ => Err("v1 leg is not an object".to_owned()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut transfer = Map::new();
    transfer.insert("id".into(), id);
    transfer.insert("legs".into(), Value::Array(legs));
    transfer.insert("description".into(), memo);
    Ok(json!({ "transfer": transfer, "recorded_at": envelope.recorded_at }))
}
