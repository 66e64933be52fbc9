//! The ledger's state and `apply`, the fold that turns events into state.

use crate::account::{Account, AccountCode, AccountStatus, CurrencyCode};
use crate::amount::Amount;
use crate::balance::{AccountBalance, Phase, Totals};
use crate::command::{CommandKind, LegSpec, ReversalSpec, TransferSpec};
use crate::event::Event;
use crate::transfer::TransferId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Every transfer ever accepted, kept so a retried id is recognised forever and any posted
    /// transfer can be reversed.
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
    pub request: TransferRequest,
    /// The legs as booked; for a reversal, the mirrored legs.
    pub legs: Vec<LegSpec>,
    /// Settled amount per leg; `None` while pending or after a void or expiry.
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
        let mut seen: Vec<&AccountCode> = Vec::with_capacity(legs.len());
        let mut out = Vec::with_capacity(legs.len());
        for leg in legs {
            if seen.contains(&&leg.account) {
                continue;
            }
            seen.push(&leg.account);
            if let Some(acc) = self.accounts.get(&leg.account) {
                out.push(AccountBalance::of(acc));
            }
        }
        out
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
                // `decide` proved the arithmetic fits; a failure here means a corrupted stream, and
                // leaving the totals untouched keeps the fold total rather than panicking.
                debug_assert!(acc.totals.moved(leg.side, phase, delta).is_some());
                if let Some(t) = acc.totals.moved(leg.side, phase, delta) {
                    acc.totals = t;
                }
            }
        }
    }

    /// Remembers a new transfer with the answer it gets: the balances right after its own event.
    fn record(&mut self, id: TransferId, new: NewRecord) {
        let outcome = TransferOutcome {
            transfer_id: id,
            status: new.status,
            balances: self.balances_of(&new.legs),
        };
        let record = TransferRecord {
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
}

fn with_account(ledger: &mut Ledger, code: &AccountCode, f: impl FnOnce(&mut Account)) {
    if let Some(acc) = ledger.accounts.get_mut(code) {
        f(acc);
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
        } => {
            ledger
                .currencies
                .insert(currency.code.clone(), currency.scale);
            ledger.accounts.insert(
                code.clone(),
                Account {
                    code: code.clone(),
                    account_type: *account_type,
                    currency: currency.clone(),
                    limits: *limits,
                    status: AccountStatus::Open,
                    metadata: metadata.clone(),
                    totals: Totals::default(),
                },
            );
        }
        Event::AccountFrozen { code } => {
            with_account(ledger, code, |a| a.status = AccountStatus::Frozen)
        }
        Event::AccountUnfrozen { code } => {
            with_account(ledger, code, |a| a.status = AccountStatus::Open)
        }
        Event::AccountClosed { code } => {
            with_account(ledger, code, |a| a.status = AccountStatus::Closed)
        }
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
        } => {
            ledger.move_legs(
                transfer
                    .legs
                    .iter()
                    .map(|l| (l, Phase::Posted, l.amount.get())),
            );
            let request = match correction {
                None => TransferRequest::Transfer(transfer.clone()),
                Some(c) => {
                    let reversal =
                        ledger
                            .transfers
                            .get(&c.reversal)
                            .and_then(|r| match &r.request {
                                TransferRequest::Reversal(spec) => Some(spec.clone()),
                                _ => None,
                            });
                    match reversal {
                        Some(reversal) => {
                            let request = TransferRequest::ReverseAndRebook {
                                reversal,
                                rebook: transfer.clone(),
                            };
                            if let Some(r) = ledger.transfers.get_mut(&c.reversal) {
                                r.request = request.clone();
                            }
                            request
                        }
                        None => TransferRequest::Transfer(transfer.clone()),
                    }
                }
            };
            ledger.record(
                transfer.id,
                NewRecord {
                    request,
                    legs: transfer.legs.clone(),
                    posted: Some(transfer.legs.iter().map(|l| l.amount).collect()),
                    status: TransferStatus::Posted,
                    effective_at: transfer.effective_at.unwrap_or(*recorded_at),
                    recorded_at: *recorded_at,
                    expires_at: None,
                },
            );
        }
        Event::TransferReserved {
            transfer,
            recorded_at,
            expires_at,
        } => {
            ledger.move_legs(
                transfer
                    .legs
                    .iter()
                    .map(|l| (l, Phase::Pending, l.amount.get())),
            );
            ledger.record(
                transfer.id,
                NewRecord {
                    request: TransferRequest::Transfer(transfer.clone()),
                    legs: transfer.legs.clone(),
                    posted: None,
                    status: TransferStatus::Pending,
                    effective_at: transfer.effective_at.unwrap_or(*recorded_at),
                    recorded_at: *recorded_at,
                    expires_at: Some(*expires_at),
                },
            );
        }
        Event::PendingTransferPosted {
            id,
            amounts,
            effective_at,
            ..
        } => {
            let Some(legs) = ledger.transfers.get(id).map(|r| r.legs.clone()) else {
                return;
            };
            ledger.move_legs(legs.iter().map(|l| (l, Phase::Pending, -l.amount.get())));
            ledger.move_legs(
                legs.iter()
                    .zip(amounts)
                    .map(|(l, a)| (l, Phase::Posted, a.get())),
            );
            if let Some(r) = ledger.transfers.get_mut(id) {
                r.status = TransferStatus::Posted;
                r.posted = Some(amounts.clone());
                r.effective_at = *effective_at;
            }
        }
        Event::PendingTransferVoided { id, .. } => release(ledger, id, TransferStatus::Voided),
        Event::PendingTransferExpired { id, .. } => release(ledger, id, TransferStatus::Expired),
        Event::TransferReversed {
            reversal,
            legs,
            effective_at,
            recorded_at,
        } => {
            ledger.move_legs(legs.iter().map(|l| (l, Phase::Posted, l.amount.get())));
            if let Some(original) = ledger.transfers.get_mut(&reversal.original) {
                original.status = TransferStatus::Reversed;
            }
            ledger.record(
                reversal.id,
                NewRecord {
                    request: TransferRequest::Reversal(reversal.clone()),
                    legs: legs.clone(),
                    posted: Some(legs.iter().map(|l| l.amount).collect()),
                    status: TransferStatus::Posted,
                    effective_at: *effective_at,
                    recorded_at: *recorded_at,
                    expires_at: None,
                },
            );
        }
        Event::PeriodClosed { through, .. } => ledger.closed_through = Some(*through),
    }
}

fn release(ledger: &mut Ledger, id: &TransferId, status: TransferStatus) {
    let Some(legs) = ledger.transfers.get(id).map(|r| r.legs.clone()) else {
        return;
    };
    ledger.move_legs(legs.iter().map(|l| (l, Phase::Pending, -l.amount.get())));
    if let Some(r) = ledger.transfers.get_mut(id) {
        r.status = status;
    }
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
}
