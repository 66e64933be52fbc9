//! Commands: what a caller asks the ledger to do. Each is decided against the ledger's state.

use crate::account::{AccountCode, AccountType, Currency, CurrencyCode, Limits, Side};
use crate::amount::Amount;
use crate::metadata::Metadata;
use crate::transfer::{ReasonCode, TransferId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A command with the moment the ledger received it. The clock is read at the edge, so decisions
/// stay pure and replayable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub kind: CommandKind,
    pub recorded_at: DateTime<Utc>,
}

impl Command {
    pub fn new(kind: CommandKind, recorded_at: DateTime<Utc>) -> Self {
        Self { kind, recorded_at }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    CreateLedger {
        name: String,
    },
    OpenAccount {
        code: AccountCode,
        account_type: AccountType,
        currency: Currency,
        limits: Limits,
        metadata: Metadata,
    },
    FreezeAccount {
        code: AccountCode,
    },
    UnfreezeAccount {
        code: AccountCode,
    },
    CloseAccount {
        code: AccountCode,
    },
    SetAccountLimits {
        code: AccountCode,
        limits: Limits,
    },
    SetAccountMetadata {
        code: AccountCode,
        metadata: Metadata,
    },
    /// Posts a transfer, or reserves it when `spec.pending` is set.
    RecordTransfer(TransferSpec),
    PostPending(PostPending),
    VoidPending {
        id: TransferId,
    },
    /// Releases a reservation whose timeout has passed; sent by the expiry job.
    ExpirePending {
        id: TransferId,
    },
    ReverseTransfer(ReversalSpec),
    /// Reverses a transfer and books its corrected version atomically.
    ReverseAndRebook {
        reversal: ReversalSpec,
        rebook: TransferSpec,
    },
    /// Locks business time up to and including `through`.
    ClosePeriod {
        through: DateTime<Utc>,
    },
}

impl CommandKind {
    /// The transfers the command posts, releases or reverses: deciding it needs their records.
    pub fn existing_transfers(&self) -> Vec<TransferId> {
        match self {
            CommandKind::PostPending(p) => vec![p.id],
            CommandKind::VoidPending { id } | CommandKind::ExpirePending { id } => vec![*id],
            CommandKind::ReverseTransfer(r) => vec![r.original],
            CommandKind::ReverseAndRebook { reversal, .. } => vec![reversal.original],
            _ => Vec::new(),
        }
    }

    /// The transfer ids the command creates. Usually new; if one is not, deciding needs its record to
    /// tell a retry from a conflict.
    pub fn created_transfers(&self) -> Vec<TransferId> {
        match self {
            CommandKind::RecordTransfer(spec) => vec![spec.id],
            CommandKind::ReverseTransfer(r) => vec![r.id],
            CommandKind::ReverseAndRebook { reversal, rebook } => vec![reversal.id, rebook.id],
            _ => Vec::new(),
        }
    }
}

/// The legs of distinct accounts, in leg order: the accounts a transfer touches, each once, in the order
/// its answer and its event list their balances.
pub fn distinct_accounts(legs: &[LegSpec]) -> impl Iterator<Item = &LegSpec> {
    legs.iter()
        .enumerate()
        .filter(|(i, leg)| legs[..*i].iter().all(|l| l.account != leg.account))
        .map(|(_, leg)| leg)
}

/// A transfer as the client asked for it. Kept verbatim so a retry can be compared with the original:
/// `effective_at` stays `None` when the client left it out, rather than becoming "now".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSpec {
    pub id: TransferId,
    pub legs: Vec<LegSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegSpec {
    pub account: AccountCode,
    pub side: Side,
    pub amount: Amount,
    /// Required although the account fixes it: it catches a client posting cents to a yen account,
    /// and it makes every event self-describing.
    pub currency: CurrencyCode,
}

/// A reservation that lapses after `timeout_secs` unless posted or voided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSpec {
    pub timeout_secs: i64,
}

/// Settles a pending transfer, in full (`amounts: None`) or in part (one amount per leg, each at most the
/// reserved amount, balanced per currency). Whatever is not posted is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPending {
    pub id: TransferId,
    pub amounts: Option<Vec<Amount>>,
    pub effective_at: Option<DateTime<Utc>>,
}

/// A reversal: a new transfer `id` that mirrors what `original` posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalSpec {
    pub id: TransferId,
    pub original: TransferId,
    pub reason: ReasonCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<DateTime<Utc>>,
}
