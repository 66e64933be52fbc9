//! The ledger's state and `apply`, the fold that turns events into state.

use crate::account::{
    Account, AccountCode, AccountStatus, AccountType, Currency, CurrencyCode, Limits,
};
use crate::amount::Amount;
use crate::balance::{AccountBalance, BalanceAfter, Phase, Totals, balances_with_accounts};
use crate::command::{CommandKind, LegSpec, ReversalSpec, TransferSpec, distinct_accounts};
use crate::event::{Correction, Event};
use crate::metadata::Metadata;
use crate::transfer::TransferId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Everything the ledger must know to decide the next command. Ordered maps keep its serialisation
/// deterministic, so snapshots of equal states are equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// `None` until the ledger has been created.
    pub name: Option<String>,
    /// The number of events applied: the stream version this state reflects.
    pub version: u64,
    pub accounts: BTreeMap<AccountCode, Account>,
    /// Each currency's scale, fixed by the first account that uses it.
    pub currencies: BTreeMap<CurrencyCode, u8>,
    /// The transfers `apply` has seen. A full replay holds every one; the writer keeps only those still
    /// pending and the most recent others ([`Ledger::forget_settled`]) and recalls any other it needs
    /// from the store ([`Ledger::recall`]) before deciding, so its memory and snapshots stay bounded.
    pub transfers: BTreeMap<TransferId, TransferRecord>,
    /// Business time up to and including this instant is locked.
    pub closed_through: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    Posted,
    Pending,
    Voided,
    Expired,
    Reversed,
}

impl fmt::Display for TransferStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransferStatus::Posted => "posted",
            TransferStatus::Pending => "pending",
            TransferStatus::Voided => "voided",
            TransferStatus::Expired => "expired",
            TransferStatus::Reversed => "reversed",
        })
    }
}

/// The request that created a transfer, kept verbatim: a retry with an equal request is a duplicate,
/// anything else with the same id is a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TransferRequest {
    Transfer(TransferSpec),
    Reversal(ReversalSpec),
    ReverseAndRebook {
        reversal: ReversalSpec,
        rebook: TransferSpec,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// The stream version of the event that created it.
    pub version: u64,
    pub request: TransferRequest,
    /// The legs as booked; for a reversal, the mirrored legs.
    pub legs: Vec<LegSpec>,
    /// Posted amount per leg; `None` while pending or after a void or expiry.
    pub posted: Option<Vec<Amount>>,
    pub status: TransferStatus,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The answer given when the transfer was accepted, returned again to retries.
    pub outcome: TransferOutcome,
}

/// What an accepted transfer command answers: the transfer's status and the resulting balances of
/// every account it touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOutcome {
    pub transfer_id: TransferId,
    pub status: TransferStatus,
    pub balances: Vec<AccountBalance>,
}

impl Ledger {
    pub fn exists(&self) -> bool {
        self.name.is_some()
    }

    pub fn account(&self, code: &AccountCode) -> Option<&Account> {
        self.accounts.get(code)
    }

    pub fn transfer(&self, id: &TransferId) -> Option<&TransferRecord> {
        self.transfers.get(id)
    }

    /// Balances of the accounts the legs touch, in leg order without repeats.
    pub fn balances_of(&self, legs: &[LegSpec]) -> Vec<AccountBalance> {
        distinct_accounts(legs)
            .filter_map(|leg| self.accounts.get(&leg.account))
            .map(AccountBalance::of)
            .collect()
    }

    /// The answers to a transfer command once its events are applied (or found to be a duplicate).
    /// Creating commands answer the original outcome; settling commands answer the current balances.
    pub fn outcomes(&self, kind: &CommandKind) -> Vec<TransferOutcome> {
        let created = |id: &TransferId| self.transfers.get(id).map(|r| r.outcome.clone());
        let current = |id: &TransferId| {
            self.transfers.get(id).map(|r| TransferOutcome {
                transfer_id: *id,
                status: r.status,
                balances: self.balances_of(&r.legs),
            })
        };
        match kind {
            CommandKind::RecordTransfer(spec) => created(&spec.id).into_iter().collect(),
            CommandKind::ReverseTransfer(r) => created(&r.id).into_iter().collect(),
            CommandKind::ReverseAndRebook { reversal, rebook } => created(&reversal.id)
                .into_iter()
                .chain(created(&rebook.id))
                .collect(),
            CommandKind::PostPending(p) => current(&p.id).into_iter().collect(),
            CommandKind::VoidPending { id } | CommandKind::ExpirePending { id } => {
                current(id).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    fn move_legs<'a>(&mut self, moves: impl IntoIterator<Item = (&'a LegSpec, Phase, i128)>) {
        for (leg, phase, delta) in moves {
            if let Some(acc) = self.accounts.get_mut(&leg.account) {
                // `decide` proved the arithmetic fits, so an overflow means a corrupt stream: keep the
                // totals rather than panic.
                debug_assert!(acc.totals.moved(leg.side, phase, delta).is_some());
                if let Some(t) = acc.totals.moved(leg.side, phase, delta) {
                    acc.totals = t;
                }
            }
        }
    }

    /// Remembers a new transfer with the answer it gets: the balances right after its own event, as
    /// the event states them (older events do not, and the state has them).
    fn insert_transfer(&mut self, id: TransferId, new: NewRecord) {
        let balances = if new.balances.is_empty() {
            self.balances_of(&new.legs)
        } else {
            balances_with_accounts(&new.legs, &new.balances)
        };
        let outcome = TransferOutcome {
            transfer_id: id,
            status: new.status,
            balances,
        };
        let record = TransferRecord {
            version: self.version,
            request: new.request,
            legs: new.legs,
            posted: new.posted,
            status: new.status,
            effective_at: new.effective_at,
            recorded_at: new.recorded_at,
            expires_at: new.expires_at,
            outcome,
        };
        self.transfers.insert(id, record);
    }

    /// Drops all but the `keep` most recent settled transfers, and none created after version
    /// `recallable_through` (events not yet committed cannot be recalled). Pending ones stay: settling
    /// them needs their legs, and they are bounded by their timeouts. What is dropped can be
    /// [`recall`]ed from its events.
    ///
    /// [`recall`]: Ledger::recall
    pub fn forget_settled(&mut self, keep: usize, recallable_through: u64) {
        let mut settled: Vec<u64> = self
            .transfers
            .values()
            .filter(|r| r.status != TransferStatus::Pending)
            .map(|r| r.version)
            .collect();
        if settled.len() <= keep {
            return;
        }
        let (_, oldest_kept, _) = settled.select_nth_unstable_by(keep, |a, b| b.cmp(a));
        let cut = (*oldest_kept).min(recallable_through);
        self.transfers
            .retain(|_, r| r.status == TransferStatus::Pending || r.version > cut);
    }

    /// The state without its settled transfers: what a snapshot needs to hold, since the writer can
    /// recall any settled transfer from the store.
    pub fn without_settled(&self) -> Ledger {
        Ledger {
            name: self.name.clone(),
            version: self.version,
            accounts: self.accounts.clone(),
            currencies: self.currencies.clone(),
            transfers: self
                .transfers
                .iter()
                .filter(|(_, r)| r.status == TransferStatus::Pending)
                .map(|(id, r)| (*id, r.clone()))
                .collect(),
            closed_through: self.closed_through,
        }
    }

    /// Brings back the transfers `ids` that this state has forgotten, from `history`: the events that
    /// created or changed them ([`Event::created_transfer`], [`Event::changed_transfer`]) and their
    /// [`Event::recall_companion`]s, with stream versions, in stream order. Records the state still holds
    /// are left as they are.
    pub fn recall(&mut self, ids: &[TransferId], history: impl IntoIterator<Item = (u64, Event)>) {
        // An empty ledger has no accounts, so folding `history` into it changes only transfer records,
        // and only those of `ids` are sure to be complete.
        let mut side = Ledger::default();
        for (version, event) in history {
            side.version = version.saturating_sub(1);
            apply(&mut side, &event);
        }
        for (id, record) in side.transfers {
            if !ids.contains(&id) {
                continue;
            }
            self.transfers.entry(id).or_insert(record);
        }
    }
}

/// Folds one event into the state. Infallible: events are facts that `decide` already validated.
pub fn apply(ledger: &mut Ledger, event: &Event) {
    ledger.version += 1;
    match event {
        Event::LedgerCreated { name, .. } => ledger.name = Some(name.clone()),
        Event::AccountOpened {
            code,
            account_type,
            currency,
            limits,
            metadata,
        } => account_opened(ledger, code, *account_type, currency, limits, metadata),
        Event::AccountFrozen { code } => set_status(ledger, code, AccountStatus::Frozen),
        Event::AccountUnfrozen { code } => set_status(ledger, code, AccountStatus::Open),
        Event::AccountClosed { code } => set_status(ledger, code, AccountStatus::Closed),
        Event::AccountLimitsChanged { code, limits } => {
            with_account(ledger, code, |a| a.limits = *limits)
        }
        Event::AccountMetadataChanged { code, metadata } => {
            with_account(ledger, code, |a| a.metadata = metadata.clone())
        }
        Event::TransferPosted {
            transfer,
            recorded_at,
            correction,
            balances,
        } => transfer_posted(
            ledger,
            transfer,
            *recorded_at,
            correction.as_ref(),
            balances,
        ),
        Event::TransferReserved {
            transfer,
            recorded_at,
            expires_at,
            balances,
        } => transfer_reserved(ledger, transfer, *recorded_at, *expires_at, balances),
        Event::PendingTransferPosted {
            id,
            amounts,
            effective_at,
            ..
        } => pending_transfer_posted(ledger, id, amounts, *effective_at),
        Event::PendingTransferVoided { id, .. } => release(ledger, id, TransferStatus::Voided),
        Event::PendingTransferExpired { id, .. } => release(ledger, id, TransferStatus::Expired),
        Event::TransferReversed {
            reversal,
            legs,
            effective_at,
            recorded_at,
            balances,
        } => transfer_reversed(
            ledger,
            reversal,
            legs,
            *effective_at,
            *recorded_at,
            balances,
        ),
        Event::PeriodClosed { through, .. } => ledger.closed_through = Some(*through),
    }
}

fn with_account(ledger: &mut Ledger, code: &AccountCode, f: impl FnOnce(&mut Account)) {
    if let Some(account) = ledger.accounts.get_mut(code) {
        f(account);
    }
}

fn set_status(ledger: &mut Ledger, code: &AccountCode, status: AccountStatus) {
    with_account(ledger, code, |a| a.status = status);
}

fn account_opened(
    ledger: &mut Ledger,
    code: &AccountCode,
    account_type: AccountType,
    currency: &Currency,
    limits: &Limits,
    metadata: &Metadata,
) {
    ledger
        .currencies
        .insert(currency.code.clone(), currency.scale);
    let account = Account {
        code: code.clone(),
        account_type,
        currency: currency.clone(),
        limits: *limits,
        status: AccountStatus::Open,
        metadata: metadata.clone(),
        totals: Totals::default(),
    };
    ledger.accounts.insert(code.clone(), account);
}

fn transfer_posted(
    ledger: &mut Ledger,
    transfer: &TransferSpec,
    recorded_at: DateTime<Utc>,
    correction: Option<&Correction>,
    balances: &[BalanceAfter],
) {
    let legs = &transfer.legs;
    ledger.move_legs(legs.iter().map(|l| (l, Phase::Posted, l.amount.get())));
    let request = match correction {
        None => TransferRequest::Transfer(transfer.clone()),
        Some(correction) => link_rebook(ledger, correction, transfer),
    };
    let record = NewRecord {
        request,
        legs: legs.clone(),
        posted: Some(legs.iter().map(|l| l.amount).collect()),
        status: TransferStatus::Posted,
        effective_at: transfer.effective_at.unwrap_or(recorded_at),
        recorded_at,
        expires_at: None,
        balances: balances.to_vec(),
    };
    ledger.insert_transfer(transfer.id, record);
}

/// The request of a rebooked transfer, also given to the reversal booked with it, so a retry of the
/// reverse-and-rebook command is recognised under either id. Without the reversal's record (a ledger
/// folding only part of the stream), the rebook stands alone.
fn link_rebook(
    ledger: &mut Ledger,
    correction: &Correction,
    rebook: &TransferSpec,
) -> TransferRequest {
    let Some(reversal_record) = ledger.transfers.get_mut(&correction.reversal) else {
        return TransferRequest::Transfer(rebook.clone());
    };
    let TransferRequest::Reversal(reversal) = &reversal_record.request else {
        return TransferRequest::Transfer(rebook.clone());
    };
    let request = TransferRequest::ReverseAndRebook {
        reversal: reversal.clone(),
        rebook: rebook.clone(),
    };
    reversal_record.request = request.clone();
    request
}

fn transfer_reserved(
    ledger: &mut Ledger,
    transfer: &TransferSpec,
    recorded_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    balances: &[BalanceAfter],
) {
    let legs = &transfer.legs;
    ledger.move_legs(legs.iter().map(|l| (l, Phase::Pending, l.amount.get())));
    let record = NewRecord {
        request: TransferRequest::Transfer(transfer.clone()),
        legs: legs.clone(),
        posted: None,
        status: TransferStatus::Pending,
        effective_at: transfer.effective_at.unwrap_or(recorded_at),
        recorded_at,
        expires_at: Some(expires_at),
        balances: balances.to_vec(),
    };
    ledger.insert_transfer(transfer.id, record);
}

fn pending_transfer_posted(
    ledger: &mut Ledger,
    id: &TransferId,
    amounts: &[Amount],
    effective_at: DateTime<Utc>,
) {
    let Some(legs) = ledger.transfers.get(id).map(|r| r.legs.clone()) else {
        return;
    };
    ledger.move_legs(legs.iter().map(|l| (l, Phase::Pending, -l.amount.get())));
    ledger.move_legs(
        legs.iter()
            .zip(amounts)
            .map(|(l, a)| (l, Phase::Posted, a.get())),
    );
    if let Some(record) = ledger.transfers.get_mut(id) {
        record.status = TransferStatus::Posted;
        record.posted = Some(amounts.to_vec());
        record.effective_at = effective_at;
    }
}

/// Gives back what a pending transfer reserved, as a void or an expiry does.
fn release(ledger: &mut Ledger, id: &TransferId, status: TransferStatus) {
    let Some(legs) = ledger.transfers.get(id).map(|r| r.legs.clone()) else {
        return;
    };
    ledger.move_legs(legs.iter().map(|l| (l, Phase::Pending, -l.amount.get())));
    if let Some(record) = ledger.transfers.get_mut(id) {
        record.status = status;
    }
}

fn transfer_reversed(
    ledger: &mut Ledger,
    reversal: &ReversalSpec,
    legs: &[LegSpec],
    effective_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    balances: &[BalanceAfter],
) {
    ledger.move_legs(legs.iter().map(|l| (l, Phase::Posted, l.amount.get())));
    if let Some(original) = ledger.transfers.get_mut(&reversal.original) {
        original.status = TransferStatus::Reversed;
    }
    let record = NewRecord {
        request: TransferRequest::Reversal(reversal.clone()),
        legs: legs.to_vec(),
        posted: Some(legs.iter().map(|l| l.amount).collect()),
        status: TransferStatus::Posted,
        effective_at,
        recorded_at,
        expires_at: None,
        balances: balances.to_vec(),
    };
    ledger.insert_transfer(reversal.id, record);
}

/// A transfer record before its outcome is known.
struct NewRecord {
    request: TransferRequest,
    legs: Vec<LegSpec>,
    posted: Option<Vec<Amount>>,
    status: TransferStatus,
    effective_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// As the event states them; empty for events older than that field.
    balances: Vec<BalanceAfter>,
}
