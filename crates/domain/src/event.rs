//! Events: the facts a ledger's stream is made of (how they are stored is in `codec`).

use crate::account::{AccountCode, AccountType, Currency, Limits};
use crate::amount::Amount;
use crate::balance::BalanceAfter;
use crate::command::{LegSpec, ReversalSpec, TransferSpec};
use crate::metadata::Metadata;
use crate::transfer::{ReasonCode, TransferId};
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
    /// A reservation was posted with `amounts` (one per leg); the rest was released.
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

    /// The id of an existing transfer this event changes (posts, releases or reverses). The store
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
}
