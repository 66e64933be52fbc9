//! `decide`: checks a command against the ledger's state and answers with the events it causes.

use crate::account::{Account, AccountCode, AccountStatus, CurrencyCode};
use crate::amount::Amount;
use crate::balance::{AccountBalance, BalanceAfter, Phase, Totals, balances_after};
use crate::command::{
    Command, CommandKind, LegSpec, PostPending, ReversalSpec, TransferSpec, distinct_accounts,
};
use crate::error::DomainError;
use crate::event::{Correction, Event};
use crate::ledger::{Ledger, TransferRequest, TransferStatus, apply};
use crate::limits::{
    MAX_DESCRIPTION_BYTES, MAX_LEDGER_NAME_BYTES, MAX_LEGS, MAX_PENDING_TIMEOUT_SECS,
};
use crate::transfer::TransferId;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// Decides one command. An exact retry of an accepted transfer answers `Ok(vec![])`: it takes effect
/// once, and [`Ledger::outcomes`] gives the original answer.
pub fn decide(ledger: &Ledger, command: &Command) -> Result<Vec<Event>, DomainError> {
    decide_at(ledger, &command.kind, command.recorded_at)
}

/// [`decide`] for a command given by its parts, so a caller that keeps its commands (to decide them again
/// after a conflict) need not copy each one into a [`Command`].
pub fn decide_at(
    ledger: &Ledger,
    kind: &CommandKind,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    if let CommandKind::CreateLedger { name } = kind {
        if ledger.exists() {
            return Err(DomainError::LedgerAlreadyExists);
        }
        if name.trim().is_empty() || name.len() > MAX_LEDGER_NAME_BYTES {
            return Err(DomainError::InvalidLedgerName {
                field: "name".into(),
            });
        }
        return Ok(vec![Event::LedgerCreated {
            name: name.clone(),
            created_at: at,
        }]);
    }
    if !ledger.exists() {
        return Err(DomainError::LedgerNotFound);
    }
    match kind {
        CommandKind::CreateLedger { .. } => Err(DomainError::LedgerAlreadyExists),
        CommandKind::OpenAccount {
            code,
            account_type,
            currency,
            limits,
            metadata,
        } => {
            if ledger.accounts.contains_key(code) {
                return Err(DomainError::AccountAlreadyExists {
                    field: "code".into(),
                    code: code.clone(),
                });
            }
            if let Some(&scale) = ledger.currencies.get(&currency.code)
                && scale != currency.scale
            {
                return Err(DomainError::CurrencyScaleMismatch {
                    field: "currency.scale".into(),
                    currency: currency.code.clone(),
                    expected: scale,
                    got: currency.scale,
                });
            }
            // A fresh account has a zero balance, which must itself respect the limits.
            if let Some((_, _)) = Totals::default().crossed(account_type.normal_side(), limits) {
                return Err(DomainError::LimitsViolatedByBalance {
                    field: "limits".into(),
                    account: code.clone(),
                });
            }
            Ok(vec![Event::AccountOpened {
                code: code.clone(),
                account_type: *account_type,
                currency: currency.clone(),
                limits: *limits,
                metadata: metadata.clone(),
            }])
        }
        CommandKind::FreezeAccount { code } => {
            expect_status(existing(ledger, "code", code)?, AccountStatus::Open)?;
            Ok(vec![Event::AccountFrozen { code: code.clone() }])
        }
        CommandKind::UnfreezeAccount { code } => {
            expect_status(existing(ledger, "code", code)?, AccountStatus::Frozen)?;
            Ok(vec![Event::AccountUnfrozen { code: code.clone() }])
        }
        CommandKind::CloseAccount { code } => {
            let acc = existing(ledger, "code", code)?;
            if acc.status == AccountStatus::Closed {
                return Err(DomainError::AccountClosed {
                    field: "code".into(),
                    code: code.clone(),
                });
            }
            if !acc.totals.is_zero() {
                return Err(DomainError::AccountNotEmpty {
                    field: "code".into(),
                    code: code.clone(),
                });
            }
            Ok(vec![Event::AccountClosed { code: code.clone() }])
        }
        CommandKind::SetAccountLimits { code, limits } => {
            let acc = not_closed(existing(ledger, "code", code)?)?;
            if acc
                .totals
                .crossed(acc.account_type.normal_side(), limits)
                .is_some()
            {
                return Err(DomainError::LimitsViolatedByBalance {
                    field: "limits".into(),
                    account: code.clone(),
                });
            }
            Ok(vec![Event::AccountLimitsChanged {
                code: code.clone(),
                limits: *limits,
            }])
        }
        CommandKind::SetAccountMetadata { code, metadata } => {
            not_closed(existing(ledger, "code", code)?)?;
            Ok(vec![Event::AccountMetadataChanged {
                code: code.clone(),
                metadata: metadata.clone(),
            }])
        }
        CommandKind::RecordTransfer(spec) => {
            if let Some(existing) = ledger.transfers.get(&spec.id) {
                return duplicate_or_conflict(
                    &existing.request,
                    &TransferRequest::Transfer(spec.clone()),
                    "id",
                    spec.id,
                );
            }
            let mut scratch = Scratch::new(ledger);
            Ok(vec![scratch.transfer(spec, at, None)?])
        }
        CommandKind::PostPending(post) => decide_post(ledger, post, at),
        CommandKind::VoidPending { id } => {
            let record = pending(ledger, id, at)?;
            let _ = record;
            Ok(vec![Event::PendingTransferVoided {
                id: *id,
                recorded_at: at,
            }])
        }
        CommandKind::ExpirePending { id } => {
            let record = ledger
                .transfers
                .get(id)
                .ok_or(DomainError::TransferNotFound {
                    field: "id".into(),
                    id: *id,
                })?;
            if record.status != TransferStatus::Pending {
                return Err(DomainError::TransferNotPending {
                    field: "id".into(),
                    id: *id,
                    status: record.status,
                });
            }
            match record.expires_at {
                Some(expires_at) if at >= expires_at => Ok(vec![Event::PendingTransferExpired {
                    id: *id,
                    recorded_at: at,
                }]),
                expires_at => Err(DomainError::PendingNotExpired {
                    field: "id".into(),
                    id: *id,
                    expires_at: expires_at.unwrap_or(at),
                }),
            }
        }
        CommandKind::ReverseTransfer(reversal) => {
            if let Some(existing) = ledger.transfers.get(&reversal.id) {
                return duplicate_or_conflict(
                    &existing.request,
                    &TransferRequest::Reversal(reversal.clone()),
                    "id",
                    reversal.id,
                );
            }
            let mut scratch = Scratch::new(ledger);
            Ok(vec![scratch.reversal(reversal, at)?])
        }
        CommandKind::ReverseAndRebook { reversal, rebook } => {
            let request = TransferRequest::ReverseAndRebook {
                reversal: reversal.clone(),
                rebook: rebook.clone(),
            };
            for (field, id) in [("reversal.id", reversal.id), ("rebook.id", rebook.id)] {
                if let Some(existing) = ledger.transfers.get(&id) {
                    return duplicate_or_conflict(&existing.request, &request, field, id);
                }
            }
            if rebook.id == reversal.id {
                return Err(DomainError::TransferIdReused {
                    field: "rebook.id".into(),
                    id: rebook.id,
                });
            }
            if rebook.pending.is_some() {
                return Err(DomainError::RebookCannotBePending {
                    field: "rebook.pending".into(),
                });
            }
            // Both halves are checked against the same scratch balances, so the rebook sees the
            // reversal's effect, and nothing is emitted unless both are accepted.
            let mut scratch = Scratch::new(ledger);
            let reversed = scratch.reversal(reversal, at)?;
            let correction = Correction {
                of: reversal.original,
                reversal: reversal.id,
                reason: reversal.reason.clone(),
            };
            let rebooked = scratch
                .transfer(rebook, at, Some(correction))
                .map_err(|e| prefix_field(e, "rebook."))?;
            Ok(vec![reversed, rebooked])
        }
        CommandKind::ClosePeriod { through } => {
            if let Some(closed) = ledger.closed_through
                && *through <= closed
            {
                return Err(DomainError::PeriodAlreadyClosed {
                    field: "through".into(),
                    closed_through: closed,
                });
            }
            if *through > at {
                return Err(DomainError::PeriodInFuture {
                    field: "through".into(),
                });
            }
            Ok(vec![Event::PeriodClosed {
                through: *through,
                recorded_at: at,
            }])
        }
    }
}

/// Decides commands in order as one unit: each sees the effects of those before it, and the first
/// refusal (with its index) refuses them all. The events of each command are returned separately.
#[expect(
    clippy::result_large_err,
    reason = "refusals are rare and the caller needs the index beside the error"
)]
pub fn decide_all(
    ledger: &Ledger,
    commands: &[Command],
) -> Result<Vec<Vec<Event>>, (usize, DomainError)> {
    let mut scratch = ledger.clone();
    let mut out = Vec::with_capacity(commands.len());
    for (i, command) in commands.iter().enumerate() {
        let events = decide(&scratch, command).map_err(|e| (i, e))?;
        for event in &events {
            apply(&mut scratch, event);
        }
        out.push(events);
    }
    Ok(out)
}

fn duplicate_or_conflict(
    existing: &TransferRequest,
    incoming: &TransferRequest,
    field: &str,
    id: TransferId,
) -> Result<Vec<Event>, DomainError> {
    if existing == incoming {
        Ok(Vec::new())
    } else {
        Err(DomainError::TransferIdConflict {
            field: field.into(),
            id,
        })
    }
}

fn existing<'a>(
    ledger: &'a Ledger,
    field: &str,
    code: &AccountCode,
) -> Result<&'a Account, DomainError> {
    ledger
        .accounts
        .get(code)
        .ok_or_else(|| DomainError::UnknownAccount {
            field: field.into(),
            code: code.clone(),
        })
}

fn expect_status(acc: &Account, wanted: AccountStatus) -> Result<(), DomainError> {
    if acc.status == wanted {
        Ok(())
    } else if acc.status == AccountStatus::Closed {
        Err(DomainError::AccountClosed {
            field: "code".into(),
            code: acc.code.clone(),
        })
    } else {
        Err(DomainError::InvalidAccountStatus {
            field: "code".into(),
            code: acc.code.clone(),
            status: acc.status,
        })
    }
}

fn not_closed(acc: &Account) -> Result<&Account, DomainError> {
    if acc.status == AccountStatus::Closed {
        return Err(DomainError::AccountClosed {
            field: "code".into(),
            code: acc.code.clone(),
        });
    }
    Ok(acc)
}

/// An account that may take a posting: it exists and is open.
fn postable<'a>(
    ledger: &'a Ledger,
    field: &str,
    code: &AccountCode,
) -> Result<&'a Account, DomainError> {
    let acc = existing(ledger, field, code)?;
    match acc.status {
        AccountStatus::Open => Ok(acc),
        AccountStatus::Frozen => Err(DomainError::AccountFrozen {
            field: field.into(),
            code: code.clone(),
        }),
        AccountStatus::Closed => Err(DomainError::AccountClosed {
            field: field.into(),
            code: code.clone(),
        }),
    }
}

fn pending<'a>(
    ledger: &'a Ledger,
    id: &TransferId,
    at: DateTime<Utc>,
) -> Result<&'a crate::ledger::TransferRecord, DomainError> {
    let record = ledger
        .transfers
        .get(id)
        .ok_or(DomainError::TransferNotFound {
            field: "id".into(),
            id: *id,
        })?;
    if record.status != TransferStatus::Pending {
        return Err(DomainError::TransferNotPending {
            field: "id".into(),
            id: *id,
            status: record.status,
        });
    }
    if let Some(expired_at) = record.expires_at
        && at >= expired_at
    {
        return Err(DomainError::PendingExpired {
            field: "id".into(),
            id: *id,
            expired_at,
        });
    }
    Ok(record)
}

fn check_open_period(
    ledger: &Ledger,
    field: &str,
    effective_at: DateTime<Utc>,
) -> Result<(), DomainError> {
    match ledger.closed_through {
        Some(closed_through) if effective_at <= closed_through => Err(DomainError::PeriodClosed {
            field: field.into(),
            effective_at,
            closed_through,
        }),
        _ => Ok(()),
    }
}

fn prefix_field(mut error: DomainError, prefix: &str) -> DomainError {
    if let Some(field) = error.field_mut() {
        field.insert_str(0, prefix);
    }
    error
}

fn decide_post(
    ledger: &Ledger,
    post: &PostPending,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    let record = pending(ledger, &post.id, at)?;
    let amounts: Vec<Amount> = match &post.amounts {
        None => record.legs.iter().map(|l| l.amount).collect(),
        Some(amounts) => {
            if amounts.len() != record.legs.len() {
                return Err(DomainError::PostAmountsMismatch {
                    field: "amounts".into(),
                    legs: record.legs.len(),
                    got: amounts.len(),
                });
            }
            for (i, (a, leg)) in amounts.iter().zip(&record.legs).enumerate() {
                if *a > leg.amount {
                    return Err(DomainError::PostExceedsPending {
                        field: format!("amounts[{i}]"),
                    });
                }
            }
            amounts.clone()
        }
    };
    let settled: Vec<LegSpec> = record
        .legs
        .iter()
        .zip(&amounts)
        .map(|(l, a)| LegSpec {
            amount: *a,
            ..l.clone()
        })
        .collect();
    check_balanced(&settled, "amounts")?;
    let effective_at = post.effective_at.unwrap_or(at);
    check_open_period(ledger, "effective_at", effective_at)?;
    let mut scratch = Scratch::new(ledger);
    for (i, leg) in record.legs.iter().enumerate() {
        let field = format!("legs[{i}].account");
        postable(ledger, &field, &leg.account)?;
        scratch.add(&field, leg, Phase::Pending, -leg.amount.get())?;
    }
    for (i, leg) in settled.iter().enumerate() {
        scratch.add(
            &format!("amounts[{i}]"),
            leg,
            Phase::Posted,
            leg.amount.get(),
        )?;
    }
    scratch.check_limits()?;
    Ok(vec![Event::PendingTransferPosted {
        id: post.id,
        amounts,
        effective_at,
        recorded_at: at,
    }])
}

/// Debits must equal credits in every currency.
fn check_balanced(legs: &[LegSpec], field: &str) -> Result<(), DomainError> {
    let mut sums: BTreeMap<&CurrencyCode, (i128, i128)> = BTreeMap::new();
    for leg in legs {
        let (debits, credits) = sums.entry(&leg.currency).or_default();
        let slot = match leg.side {
            crate::account::Side::Debit => debits,
            crate::account::Side::Credit => credits,
        };
        *slot = slot
            .checked_add(leg.amount.get())
            .ok_or_else(|| DomainError::AmountOverflow {
                field: field.into(),
            })?;
    }
    match sums.into_iter().find(|(_, (d, c))| d != c) {
        Some((currency, (debits, credits))) => Err(DomainError::Unbalanced {
            field: field.into(),
            currency: currency.clone(),
            debits,
            credits,
        }),
        None => Ok(()),
    }
}

/// Balances as they would be after the command, for the accounts it touches; nothing is written to the
/// ledger until every check has passed.
struct Scratch<'a> {
    ledger: &'a Ledger,
    touched: BTreeMap<AccountCode, (String, Totals)>,
}

impl<'a> Scratch<'a> {
    fn new(ledger: &'a Ledger) -> Self {
        Self {
            ledger,
            touched: BTreeMap::new(),
        }
    }

    fn add(
        &mut self,
        field: &str,
        leg: &LegSpec,
        phase: Phase,
        delta: i128,
    ) -> Result<(), DomainError> {
        let current = match self.touched.get(&leg.account) {
            Some((_, t)) => *t,
            None => existing(self.ledger, field, &leg.account)?.totals,
        };
        let moved =
            current
                .moved(leg.side, phase, delta)
                .ok_or_else(|| DomainError::AmountOverflow {
                    field: field.into(),
                })?;
        let entry = self
            .touched
            .entry(leg.account.clone())
            .or_insert_with(|| (field.to_owned(), moved));
        entry.1 = moved;
        Ok(())
    }

    /// The balances the legs' accounts will have once this command is applied, in leg order without
    /// repeats (what [`Ledger::balances_of`] gives after `apply`), in the form events state them.
    fn balances(&self, legs: &[LegSpec]) -> Vec<BalanceAfter> {
        balances_after(&self.account_balances(legs))
    }

    fn account_balances(&self, legs: &[LegSpec]) -> Vec<AccountBalance> {
        distinct_accounts(legs)
            .filter_map(|leg| {
                let acc = self.ledger.accounts.get(&leg.account)?;
                let totals = self
                    .touched
                    .get(&leg.account)
                    .map_or(acc.totals, |(_, t)| *t);
                Some(AccountBalance::with_totals(acc, &totals))
            })
            .collect()
    }

    fn check_limits(&self) -> Result<(), DomainError> {
        for (code, (field, totals)) in &self.touched {
            let acc = existing(self.ledger, field, code)?;
            if let Some((limit, balance)) =
                totals.crossed(acc.account_type.normal_side(), &acc.limits)
            {
                return Err(DomainError::LimitExceeded {
                    field: field.clone(),
                    account: code.clone(),
                    limit,
                    balance,
                });
            }
        }
        Ok(())
    }

    /// Validates a transfer's legs, adds them to the scratch balances and checks limits.
    fn book(
        &mut self,
        legs: &[LegSpec],
        phase: Phase,
        effective_at: DateTime<Utc>,
        field: &str,
    ) -> Result<(), DomainError> {
        if legs.len() < 2 {
            return Err(DomainError::TooFewLegs {
                field: field.into(),
                count: legs.len(),
            });
        }
        if legs.len() > MAX_LEGS {
            return Err(DomainError::TooManyLegs {
                field: field.into(),
                count: legs.len(),
                max: MAX_LEGS,
            });
        }
        for (i, leg) in legs.iter().enumerate() {
            let acc = postable(self.ledger, &format!("{field}[{i}].account"), &leg.account)?;
            if acc.currency.code != leg.currency {
                return Err(DomainError::CurrencyMismatch {
                    field: format!("{field}[{i}].currency"),
                    account: leg.account.clone(),
                    expected: acc.currency.code.clone(),
                    got: leg.currency.clone(),
                });
            }
            if legs[..i]
                .iter()
                .any(|l| l.account == leg.account && l.side == leg.side)
            {
                return Err(DomainError::DuplicateLeg {
                    field: format!("{field}[{i}].account"),
                    account: leg.account.clone(),
                });
            }
        }
        check_balanced(legs, field)?;
        check_open_period(self.ledger, "effective_at", effective_at)?;
        for (i, leg) in legs.iter().enumerate() {
            self.add(
                &format!("{field}[{i}].amount"),
                leg,
                phase,
                leg.amount.get(),
            )?;
        }
        self.check_limits()
    }

    fn transfer(
        &mut self,
        spec: &TransferSpec,
        at: DateTime<Utc>,
        correction: Option<Correction>,
    ) -> Result<Event, DomainError> {
        if spec.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(DomainError::TooLong {
                field: "description".into(),
                max: MAX_DESCRIPTION_BYTES,
            });
        }
        let effective_at = spec.effective_at.unwrap_or(at);
        match spec.pending {
            None => {
                self.book(&spec.legs, Phase::Posted, effective_at, "legs")?;
                Ok(Event::TransferPosted {
                    transfer: spec.clone(),
                    recorded_at: at,
                    correction,
                    balances: self.balances(&spec.legs),
                })
            }
            Some(pending) => {
                if !(1..=MAX_PENDING_TIMEOUT_SECS).contains(&pending.timeout_secs) {
                    return Err(DomainError::InvalidTimeout {
                        field: "pending.timeout_secs".into(),
                        max_secs: MAX_PENDING_TIMEOUT_SECS,
                    });
                }
                self.book(&spec.legs, Phase::Pending, effective_at, "legs")?;
                Ok(Event::TransferReserved {
                    transfer: spec.clone(),
                    recorded_at: at,
                    expires_at: at + Duration::seconds(pending.timeout_secs),
                    balances: self.balances(&spec.legs),
                })
            }
        }
    }

    fn reversal(
        &mut self,
        reversal: &ReversalSpec,
        at: DateTime<Utc>,
    ) -> Result<Event, DomainError> {
        let original =
            self.ledger
                .transfers
                .get(&reversal.original)
                .ok_or(DomainError::TransferNotFound {
                    field: "original".into(),
                    id: reversal.original,
                })?;
        let posted = match (&original.status, &original.posted) {
            (TransferStatus::Posted, Some(posted)) => posted,
            (status, _) => {
                return Err(DomainError::NotReversible {
                    field: "original".into(),
                    id: reversal.original,
                    status: *status,
                });
            }
        };
        let legs: Vec<LegSpec> = original
            .legs
            .iter()
            .zip(posted)
            .map(|(l, amount)| LegSpec {
                account: l.account.clone(),
                side: l.side.opposite(),
                amount: *amount,
                currency: l.currency.clone(),
            })
            .collect();
        let effective_at = reversal.effective_at.unwrap_or(at);
        self.book(&legs, Phase::Posted, effective_at, "legs")?;
        Ok(Event::TransferReversed {
            balances: self.balances(&legs),
            reversal: reversal.clone(),
            legs,
            effective_at,
            recorded_at: at,
        })
    }
}
