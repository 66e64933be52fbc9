//! Tally's ledger domain: pure decisions and state folds, no I/O.
//!
//! A [`Ledger`] is the aggregate and consistency boundary: every command is decided against one ledger's
//! state (`decide`), producing events that are folded back into state (`apply`). The event store, the
//! HTTP layer and the projector all build on these types; nothing here knows about them.

mod account;
mod amount;
mod balance;
mod codec;
mod command;
mod decide;
mod error;
mod event;
mod ledger;
mod ledger_id;
mod metadata;
pub mod report;
mod transfer;

pub use account::{
    Account, AccountCode, AccountStatus, AccountType, Currency, CurrencyCode, Limits, Side,
};
pub use amount::{Amount, AmountError};
pub use balance::{AccountBalance, BalanceAfter, Totals};
pub use codec::{Envelope, Payload, UpcastError, Upcaster, Upcasters};
pub use command::{
    Command, CommandKind, LegSpec, PendingSpec, PostPending, ReversalSpec, TransferSpec,
};
pub use decide::{decide, decide_all, decide_at};
pub use error::{DomainError, LimitKind, ParseError};
pub use event::{Companion, Correction, Event};
pub use ledger::{Ledger, TransferOutcome, TransferRecord, TransferRequest, TransferStatus, apply};
pub use ledger_id::LedgerId;
pub use metadata::Metadata;
pub use transfer::{ReasonCode, TransferId};

/// Limits that keep one command bounded in memory and time; each is enforced where the value is parsed.
pub mod limits {
    /// More legs than this is almost certainly a client bug; a journal entry is rarely wider than a page.
    pub const MAX_LEGS: usize = 128;
    /// Descriptions are for humans reading statements, not for storing documents.
    pub const MAX_DESCRIPTION_BYTES: usize = 1024;
    /// Metadata is a small tag map; large blobs belong in the caller's own store.
    pub const MAX_METADATA_ENTRIES: usize = 32;
    pub const MAX_METADATA_KEY_BYTES: usize = 64;
    pub const MAX_METADATA_VALUE_BYTES: usize = 512;
    /// Reservations that outlive a month are better modelled as real postings.
    pub const MAX_PENDING_TIMEOUT_SECS: i64 = 30 * 24 * 3600;
    /// Account codes are identifiers, not prose; depth keeps roll-ups cheap.
    pub const MAX_ACCOUNT_CODE_BYTES: usize = 128;
    pub const MAX_ACCOUNT_CODE_DEPTH: usize = 10;
    pub const MAX_LEDGER_NAME_BYTES: usize = 200;
}
