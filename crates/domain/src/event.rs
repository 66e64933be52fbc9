//! Events: the facts a ledger's stream is made of, and how they are stored.

use crate::account::{AccountCode, AccountType, Currency, Limits};
use crate::amount::Amount;
use crate::balance::BalanceAfter;
use crate::command::{LegSpec, ReversalSpec, TransferSpec};
use crate::metadata::Metadata;
use crate::transfer::{ReasonCode, TransferId};
use crate::upcast::{UpcastError, Upcasters};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    LedgerCreated {
        name: String,
        created_at: DateTime<Utc>,
    },
    AccountOpened {
        code: AccountCode,
        account_type: AccountType,
        currency: Currency,
        limits: Limits,
        metadata: Metadata,
    },
    AccountFrozen {
        code: AccountCode,
    },
    AccountUnfrozen {
        code: AccountCode,
    },
    AccountClosed {
        code: AccountCode,
    },
    AccountLimitsChanged {
        code: AccountCode,
        limits: Limits,
    },
    AccountMetadataChanged {
        code: AccountCode,
        metadata: Metadata,
    },
    /// A transfer took effect immediately. `transfer` is the request verbatim; its effective time is
    /// `transfer.effective_at`, or `recorded_at` when the client gave none.
    TransferPosted {
        transfer: TransferSpec,
        recorded_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correction: Option<Correction>,
        /// The balances of the accounts it touched right after it: the answer its retries get, even once
        /// the writer no longer holds the transfer in memory. Events recorded before this field existed
        /// lack it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        balances: Vec<BalanceAfter>,
    },
    /// A two-phase transfer reserved its amounts until `expires_at`.
    TransferReserved {
        transfer: TransferSpec,
        recorded_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        /// As in `TransferPosted`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        balances: Vec<BalanceAfter>,
    },
    /// A reservation was settled with `amounts` (one per leg); the rest was released.
    PendingTransferPosted {
        id: TransferId,
        amounts: Vec<Amount>,
        effective_at: DateTime<Utc>,
        recorded_at: DateTime<Utc>,
    },
    PendingTransferVoided {
        id: TransferId,
        recorded_at: DateTime<Utc>,
    },
    PendingTransferExpired {
        id: TransferId,
        recorded_at: DateTime<Utc>,
    },
    /// A new transfer `reversal.id` mirrored what `reversal.original` had posted; `legs` are the mirrored
    /// legs, so readers need not look the original up.
    TransferReversed {
        reversal: ReversalSpec,
        legs: Vec<LegSpec>,
        effective_at: DateTime<Utc>,
        recorded_at: DateTime<Utc>,
        /// As in `TransferPosted`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        balances: Vec<BalanceAfter>,
    },
    PeriodClosed {
        through: DateTime<Utc>,
        recorded_at: DateTime<Utc>,
    },
}

/// Where to find an event [`Event::recall_companion`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Companion {
    /// The event at this version of the same stream.
    Version(u64),
    /// The event that created this transfer.
    Created(TransferId),
}

/// Links a rebooked transfer to the transfer it corrects and to the reversal booked with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub of: TransferId,
    pub reversal: TransferId,
    pub reason: ReasonCode,
}

/// The parts of a stored event that decoding needs: older shapes may lean on the envelope.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub event_type: &'a str,
    pub schema_version: i32,
    pub recorded_at: DateTime<Utc>,
}

impl Event {
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::LedgerCreated { .. } => "LedgerCreated",
            Event::AccountOpened { .. } => "AccountOpened",
            Event::AccountFrozen { .. } => "AccountFrozen",
            Event::AccountUnfrozen { .. } => "AccountUnfrozen",
            Event::AccountClosed { .. } => "AccountClosed",
            Event::AccountLimitsChanged { .. } => "AccountLimitsChanged",
            Event::AccountMetadataChanged { .. } => "AccountMetadataChanged",
            Event::TransferPosted { .. } => "TransferPosted",
            Event::TransferReserved { .. } => "TransferReserved",
            Event::PendingTransferPosted { .. } => "PendingTransferPosted",
            Event::PendingTransferVoided { .. } => "PendingTransferVoided",
            Event::PendingTransferExpired { .. } => "PendingTransferExpired",
            Event::TransferReversed { .. } => "TransferReversed",
            Event::PeriodClosed { .. } => "PeriodClosed",
        }
    }

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

    /// The id of the transfer this event creates, which the store keeps unique per ledger forever.
    pub fn created_transfer(&self) -> Option<TransferId> {
        match self {
            Event::TransferPosted { transfer, .. } | Event::TransferReserved { transfer, .. } => {
                Some(transfer.id)
            }
            Event::TransferReversed { reversal, .. } => Some(reversal.id),
            _ => None,
        }
    }

    /// The id of an existing transfer this event changes (settles, releases or reverses). The store
    /// indexes the same expression (`tally_transfer_ref`, migration 0011), so the writer can find a
    /// transfer's whole history without holding it in memory.
    pub fn changed_transfer(&self) -> Option<TransferId> {
        match self {
            Event::PendingTransferPosted { id, .. }
            | Event::PendingTransferVoided { id, .. }
            | Event::PendingTransferExpired { id, .. } => Some(*id),
            Event::TransferReversed { reversal, .. } => Some(reversal.original),
            _ => None,
        }
    }

    /// The event besides its own history that recalling the transfer this event creates needs: a
    /// reversal's record takes the rebook booked with it (always the next event of the stream, if any),
    /// a rebook's record takes its reversal's request.
    pub fn recall_companion(&self, version: u64) -> Option<Companion> {
        match self {
            Event::TransferReversed { .. } => Some(Companion::Version(version + 1)),
            Event::TransferPosted {
                correction: Some(c),
                ..
            } => Some(Companion::Created(c.reversal)),
            _ => None,
        }
    }

    /// The stored payload: the event's fields without the type tag, which the store keeps in a column.
    pub fn to_payload(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => map.remove("data").unwrap_or_default(),
            // Every variant is a struct variant of plain data, so serialisation cannot fail or differ.
            _ => serde_json::Value::Null,
        }
    }

    /// Decodes a stored event, upcasting older shapes with the production upcasters.
    pub fn decode(envelope: Envelope<'_>, payload: serde_json::Value) -> Result<Self, UpcastError> {
        Self::decode_with(&Upcasters::standard(), envelope, payload)
    }

    /// Decodes a stored event from its payload's JSON text. An event already in its type's current
    /// shape is read straight from the text, without building a `serde_json::Value` twice: the bulk
    /// rebuild decodes every event of the store, and those allocations were most of its time. Older
    /// shapes go through [`Event::decode`].
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
        let tagged = format!(r#"{{"type":{tag},"data":{payload}}}"#);
        serde_json::from_str(&tagged).map_err(|e| shape(e.to_string()))
    }

    pub fn decode_with(
        upcasters: &Upcasters,
        envelope: Envelope<'_>,
        payload: serde_json::Value,
    ) -> Result<Self, UpcastError> {
        let current = Self::current_schema_version(envelope.event_type);
        let payload = upcasters.upcast(envelope, current, payload)?;
        let tagged = serde_json::json!({ "type": envelope.event_type, "data": payload });
        serde_json::from_value(tagged).map_err(|e| UpcastError::Shape {
            event_type: envelope.event_type.to_owned(),
            reason: e.to_string(),
        })
    }
}
