//! `decide`: checks a command against the ledger's state and answers with the events it causes.

use crate::account::{
    Account, AccountCode, AccountStatus, AccountType, Currency, CurrencyCode, Limits, Side,
};
use crate::amount::Amount;
use crate::balance::{AccountBalance, BalanceAfter, Phase, Totals, balances_after};
use crate::command::{
    Command, CommandKind, LegSpec, PostPending, ReversalSpec, TransferSpec, distinct_accounts,
};
use crate::error::DomainError;
use crate::event::{Correction, Event};
use crate::ledger::{Ledger, TransferRecord, TransferRequest, TransferStatus, apply};
use crate::limits::{
    MAX_DESCRIPTION_BYTES, MAX_LEDGER_NAME_BYTES, MAX_LEGS, MAX_PENDING_TIMEOUT_SECS,
};
use crate::metadata::Metadata;
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
        return create_ledger(ledger, name, at);
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
        } => open_account(ledger, code, *account_type, currency, limits, metadata),
        CommandKind::FreezeAccount { code } => freeze_account(ledger, code),
        CommandKind::UnfreezeAccount { code } => unfreeze_account(ledger, code),
        CommandKind::CloseAccount { code } => close_account(ledger, code),
        CommandKind::SetAccountLimits { code, limits } => set_account_limits(ledger, code, limits),
        CommandKind::SetAccountMetadata { code, metadata } => {
            set_account_metadata(ledger, code, metadata)
        }
        CommandKind::RecordTransfer(spec) => record_transfer(ledger, spec, at),
        CommandKind::PostPending(post) => post_pending(ledger, post, at),
        CommandKind::VoidPending { id } => void_pending(ledger, id, at),
        CommandKind::ExpirePending { id } => expire_pending(ledger, id, at),
        CommandKind::ReverseTransfer(reversal) => reverse_transfer(ledger, reversal, at),
        CommandKind::ReverseAndRebook { reversal, rebook } => {
            reverse_and_rebook(ledger, reversal, rebook, at)
        }
        CommandKind::ClosePeriod { through } => close_period(ledger, *through, at),
    }
}

fn create_ledger(
    ledger: &Ledger,
    name: &str,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    if ledger.exists() {
        return Err(DomainError::LedgerAlreadyExists);
    }
    if name.trim().is_empty() || name.len() > MAX_LEDGER_NAME_BYTES {
        return Err(DomainError::InvalidLedgerName {
            field: "name".into(),
        });
    }
    Ok(vec![Event::LedgerCreated {
        name: name.to_owned(),
        created_at: at,
    }])
}

fn open_account(
    ledger: &Ledger,
    code: &AccountCode,
    account_type: AccountType,
    currency: &Currency,
    limits: &Limits,
    metadata: &Metadata,
) -> Result<Vec<Event>, DomainError> {
    if ledger.accounts.contains_key(code) {
        return Err(DomainError::AccountAlreadyExists {
            field: "code".into(),
            code: code.clone(),
        });
    }
    check_currency_scale(ledger, currency)?;
    // A fresh account has a zero balance, which must itself respect the limits.
    check_limits_hold(code, account_type, &Totals::default(), limits)?;
    Ok(vec![Event::AccountOpened {
        code: code.clone(),
        account_type,
        currency: currency.clone(),
        limits: *limits,
        metadata: metadata.clone(),
    }])
}

/// A currency keeps the scale its first account gave it.
fn check_currency_scale(ledger: &Ledger, currency: &Currency) -> Result<(), DomainError> {
    match ledger.currencies.get(&currency.code) {
        Some(&scale) if scale != currency.scale => Err(DomainError::CurrencyScaleMismatch {
            field: "currency.scale".into(),
            currency: currency.code.clone(),
            expected: scale,
            got: currency.scale,
        }),
        _ => Ok(()),
    }
}

fn freeze_account(ledger: &Ledger, code: &AccountCode) -> Result<Vec<Event>, DomainError> {
    expect_status(known_account(ledger, "code", code)?, AccountStatus::Open)?;
    Ok(vec![Event::AccountFrozen { code: code.clone() }])
}

fn unfreeze_account(ledger: &Ledger, code: &AccountCode) -> Result<Vec<Event>, DomainError> {
    expect_status(known_account(ledger, "code", code)?, AccountStatus::Frozen)?;
    Ok(vec![Event::AccountUnfrozen { code: code.clone() }])
}

fn close_account(ledger: &Ledger, code: &AccountCode) -> Result<Vec<Event>, DomainError> {
    let account = not_closed(known_account(ledger, "code", code)?)?;
    if !account.totals.is_zero() {
        return Err(DomainError::AccountNotEmpty {
            field: "code".into(),
            code: code.clone(),
        });
    }
    Ok(vec![Event::AccountClosed { code: code.clone() }])
}

fn set_account_limits(
    ledger: &Ledger,
    code: &AccountCode,
    limits: &Limits,
) -> Result<Vec<Event>, DomainError> {
    let account = not_closed(known_account(ledger, "code", code)?)?;
    check_limits_hold(code, account.account_type, &account.totals, limits)?;
    Ok(vec![Event::AccountLimitsChanged {
        code: code.clone(),
        limits: *limits,
    }])
}

/// Limits an account is given must already hold for its balance.
fn check_limits_hold(
    code: &AccountCode,
    account_type: AccountType,
    totals: &Totals,
    limits: &Limits,
) -> Result<(), DomainError> {
    match totals.crossed(account_type.normal_side(), limits) {
        Some(_) => Err(DomainError::LimitsViolatedByBalance {
            field: "limits".into(),
            account: code.clone(),
        }),
        None => Ok(()),
    }
}

fn set_account_metadata(
    ledger: &Ledger,
    code: &AccountCode,
    metadata: &Metadata,
) -> Result<Vec<Event>, DomainError> {
    not_closed(known_account(ledger, "code", code)?)?;
    Ok(vec![Event::AccountMetadataChanged {
        code: code.clone(),
        metadata: metadata.clone(),
    }])
}

fn record_transfer(
    ledger: &Ledger,
    spec: &TransferSpec,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    let request = || TransferRequest::Transfer(spec.clone());
    if let Some(answer) = retry_or_conflict(ledger, "id", spec.id, request) {
        return answer;
    }
    Ok(vec![Draft::new(ledger).book_transfer(spec, at, None)?])
}

fn void_pending(
    ledger: &Ledger,
    id: &TransferId,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    unexpired_pending(ledger, id, at)?;
    Ok(vec![Event::PendingTransferVoided {
        id: *id,
        recorded_at: at,
    }])
}

fn expire_pending(
    ledger: &Ledger,
    id: &TransferId,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    match pending_transfer(ledger, id)?.expires_at {
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

fn reverse_transfer(
    ledger: &Ledger,
    reversal: &ReversalSpec,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    let request = || TransferRequest::Reversal(reversal.clone());
    if let Some(answer) = retry_or_conflict(ledger, "id", reversal.id, request) {
        return answer;
    }
    Ok(vec![Draft::new(ledger).book_reversal(reversal, at)?])
}

fn reverse_and_rebook(
    ledger: &Ledger,
    reversal: &ReversalSpec,
    rebook: &TransferSpec,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    let request = TransferRequest::ReverseAndRebook {
        reversal: reversal.clone(),
        rebook: rebook.clone(),
    };
    for (field, id) in [("reversal.id", reversal.id), ("rebook.id", rebook.id)] {
        if let Some(answer) = retry_or_conflict(ledger, field, id, || request.clone()) {
            return answer;
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
    // Both halves are checked against the same draft balances, so the rebook sees the reversal's
    // effect, and nothing is emitted unless both are accepted.
    let mut draft = Draft::new(ledger);
    let reversed = draft.book_reversal(reversal, at)?;
    let correction = Correction {
        of: reversal.original,
        reversal: reversal.id,
        reason: reversal.reason.clone(),
    };
    let rebooked = draft
        .book_transfer(rebook, at, Some(correction))
        .map_err(|e| prefix_field(e, "rebook."))?;
    Ok(vec![reversed, rebooked])
}

fn close_period(
    ledger: &Ledger,
    through: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    if let Some(closed) = ledger.closed_through
        && through <= closed
    {
        return Err(DomainError::PeriodAlreadyClosed {
            field: "through".into(),
            closed_through: closed,
        });
    }
    if through > at {
        return Err(DomainError::PeriodInFuture {
            field: "through".into(),
        });
    }
    Ok(vec![Event::PeriodClosed {
        through,
        recorded_at: at,
    }])
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
    let mut state = ledger.clone();
    let mut out = Vec::with_capacity(commands.len());
    for (i, command) in commands.iter().enumerate() {
        let events = decide(&state, command).map_err(|e| (i, e))?;
        for event in &events {
            apply(&mut state, event);
        }
        out.push(events);
    }
    Ok(out)
}

/// The answer to a command whose new transfer id is already taken, if it is: an exact retry takes
/// effect once (no events), any other body under that id is a conflict.
fn retry_or_conflict(
    ledger: &Ledger,
    field: &str,
    id: TransferId,
    incoming: impl FnOnce() -> TransferRequest,
) -> Option<Result<Vec<Event>, DomainError>> {
    let existing = ledger.transfers.get(&id)?;
    Some(if existing.request == incoming() {
        Ok(Vec::new())
    } else {
        Err(DomainError::TransferIdConflict {
            field: field.into(),
            id,
        })
    })
}

fn known_account<'a>(
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

fn expect_status(account: &Account, wanted: AccountStatus) -> Result<(), DomainError> {
    if account.status == wanted {
        return Ok(());
    }
    not_closed(account)?;
    Err(DomainError::InvalidAccountStatus {
        field: "code".into(),
        code: account.code.clone(),
        status: account.status,
    })
}

fn not_closed(account: &Account) -> Result<&Account, DomainError> {
    if account.status == AccountStatus::Closed {
        return Err(DomainError::AccountClosed {
            field: "code".into(),
            code: account.code.clone(),
        });
    }
    Ok(account)
}

/// An account that may take a posting: it exists and is open.
fn postable<'a>(
    ledger: &'a Ledger,
    field: &str,
    code: &AccountCode,
) -> Result<&'a Account, DomainError> {
    let account = known_account(ledger, field, code)?;
    match account.status {
        AccountStatus::Open => Ok(account),
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

/// A transfer that exists and is still pending, whether or not its timeout has passed.
fn pending_transfer<'a>(
    ledger: &'a Ledger,
    id: &TransferId,
) -> Result<&'a TransferRecord, DomainError> {
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
    Ok(record)
}

/// A pending transfer that may still be posted or voided: past its timeout only expiry releases it.
fn unexpired_pending<'a>(
    ledger: &'a Ledger,
    id: &TransferId,
    at: DateTime<Utc>,
) -> Result<&'a TransferRecord, DomainError> {
    let record = pending_transfer(ledger, id)?;
    match record.expires_at {
        Some(expired_at) if at >= expired_at => Err(DomainError::PendingExpired {
            field: "id".into(),
            id: *id,
            expired_at,
        }),
        _ => Ok(record),
    }
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

fn post_pending(
    ledger: &Ledger,
    post: &PostPending,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    let record = unexpired_pending(ledger, &post.id, at)?;
    let amounts = amounts_to_post(record, post)?;
    let posted_legs: Vec<LegSpec> = record
        .legs
        .iter()
        .zip(&amounts)
        .map(|(leg, amount)| LegSpec {
            amount: *amount,
            ..leg.clone()
        })
        .collect();
    check_balanced(ledger, &posted_legs, "amounts")?;
    let effective_at = post.effective_at.unwrap_or(at);
    check_open_period(ledger, "effective_at", effective_at)?;
    let mut draft = Draft::new(ledger);
    for (i, leg) in record.legs.iter().enumerate() {
        let field = format!("legs[{i}].account");
        postable(ledger, &field, &leg.account)?;
        draft.add(&field, leg, Phase::Pending, -leg.amount.get())?;
    }
    for (i, leg) in posted_legs.iter().enumerate() {
        let field = format!("amounts[{i}]");
        draft.add(&field, leg, Phase::Posted, leg.amount.get())?;
    }
    draft.check_limits()?;
    Ok(vec![Event::PendingTransferPosted {
        id: post.id,
        amounts,
        effective_at,
        recorded_at: at,
    }])
}

/// The amount to post on each leg: all that is reserved, or what the command names, one per leg and
/// none above its reservation.
fn amounts_to_post(
    record: &TransferRecord,
    post: &PostPending,
) -> Result<Vec<Amount>, DomainError> {
    let Some(amounts) = &post.amounts else {
        return Ok(record.legs.iter().map(|leg| leg.amount).collect());
    };
    if amounts.len() != record.legs.len() {
        return Err(DomainError::PostAmountsMismatch {
            field: "amounts".into(),
            legs: record.legs.len(),
            got: amounts.len(),
        });
    }
    match amounts
        .iter()
        .zip(&record.legs)
        .position(|(a, leg)| *a > leg.amount)
    {
        Some(i) => Err(DomainError::PostExceedsPending {
            field: format!("amounts[{i}]"),
        }),
        None => Ok(amounts.clone()),
    }
}

/// Debits must equal credits in every currency.
fn check_balanced(ledger: &Ledger, legs: &[LegSpec], field: &str) -> Result<(), DomainError> {
    let mut sums: BTreeMap<&CurrencyCode, (i128, i128)> = BTreeMap::new();
    for leg in legs {
        let (debits, credits) = sums.entry(&leg.currency).or_default();
        let sum = match leg.side {
            Side::Debit => debits,
            Side::Credit => credits,
        };
        *sum = sum
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
            scale: ledger.currencies.get(currency).copied(),
        }),
        None => Ok(()),
    }
}

/// A transfer has two to [`MAX_LEGS`] legs.
fn check_leg_count(legs: &[LegSpec], field: &str) -> Result<(), DomainError> {
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
    Ok(())
}

/// Leg `i` posts to an open account in that account's currency, and no earlier leg has the same
/// account and side.
fn check_leg(ledger: &Ledger, legs: &[LegSpec], i: usize, field: &str) -> Result<(), DomainError> {
    let leg = &legs[i];
    let account = postable(ledger, &format!("{field}[{i}].account"), &leg.account)?;
    if account.currency.code != leg.currency {
        return Err(DomainError::CurrencyMismatch {
            field: format!("{field}[{i}].currency"),
            account: leg.account.clone(),
            expected: account.currency.code.clone(),
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
    Ok(())
}

/// Balances as they would be after the command, for the accounts it touches; nothing is written to the
/// ledger until every check has passed.
struct Draft<'a> {
    ledger: &'a Ledger,
    touched: BTreeMap<AccountCode, Touched>,
}

/// An account's totals so far in a draft, with the field of the leg that first touched it, which a limit
/// refusal names.
struct Touched {
    field: String,
    totals: Totals,
}

impl<'a> Draft<'a> {
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
            Some(touched) => touched.totals,
            None => known_account(self.ledger, field, &leg.account)?.totals,
        };
        let moved =
            current
                .moved(leg.side, phase, delta)
                .ok_or_else(|| DomainError::AmountOverflow {
                    field: field.into(),
                })?;
        let touched = self
            .touched
            .entry(leg.account.clone())
            .or_insert_with(|| Touched {
                field: field.to_owned(),
                totals: moved,
            });
        touched.totals = moved;
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
                let account = self.ledger.accounts.get(&leg.account)?;
                let totals = self
                    .touched
                    .get(&leg.account)
                    .map_or(account.totals, |touched| touched.totals);
                Some(AccountBalance::with_totals(account, &totals))
            })
            .collect()
    }

    fn check_limits(&self) -> Result<(), DomainError> {
        for (code, Touched { field, totals }) in &self.touched {
            let account = known_account(self.ledger, field, code)?;
            if let Some(crossing) =
                totals.crossed(account.account_type.normal_side(), &account.limits)
            {
                return Err(DomainError::LimitExceeded {
                    field: field.clone(),
                    account: code.clone(),
                    kind: crossing.kind,
                    limit: crossing.limit,
                    balance: crossing.balance,
                    scale: account.currency.scale,
                });
            }
        }
        Ok(())
    }

    /// Validates a transfer's legs, adds them to the draft balances and checks limits.
    fn book_legs(
        &mut self,
        legs: &[LegSpec],
        phase: Phase,
        effective_at: DateTime<Utc>,
        field: &str,
    ) -> Result<(), DomainError> {
        check_leg_count(legs, field)?;
        for i in 0..legs.len() {
            check_leg(self.ledger, legs, i, field)?;
        }
        check_balanced(self.ledger, legs, field)?;
        check_open_period(self.ledger, "effective_at", effective_at)?;
        for (i, leg) in legs.iter().enumerate() {
            let leg_field = format!("{field}[{i}].amount");
            self.add(&leg_field, leg, phase, leg.amount.get())?;
        }
        self.check_limits()
    }

    fn book_transfer(
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
        let Some(pending) = spec.pending else {
            self.book_legs(&spec.legs, Phase::Posted, effective_at, "legs")?;
            return Ok(Event::TransferPosted {
                transfer: spec.clone(),
                recorded_at: at,
                correction,
                balances: self.balances(&spec.legs),
            });
        };
        if !(1..=MAX_PENDING_TIMEOUT_SECS).contains(&pending.timeout_secs) {
            return Err(DomainError::InvalidTimeout {
                field: "pending.timeout_secs".into(),
                max_secs: MAX_PENDING_TIMEOUT_SECS,
            });
        }
        self.book_legs(&spec.legs, Phase::Pending, effective_at, "legs")?;
        Ok(Event::TransferReserved {
            transfer: spec.clone(),
            recorded_at: at,
            expires_at: at + Duration::seconds(pending.timeout_secs),
            balances: self.balances(&spec.legs),
        })
    }

    fn book_reversal(
        &mut self,
        reversal: &ReversalSpec,
        at: DateTime<Utc>,
    ) -> Result<Event, DomainError> {
        let legs = mirrored_legs(self.ledger, reversal)?;
        let effective_at = reversal.effective_at.unwrap_or(at);
        self.book_legs(&legs, Phase::Posted, effective_at, "legs")?;
        Ok(Event::TransferReversed {
            balances: self.balances(&legs),
            reversal: reversal.clone(),
            legs,
            effective_at,
            recorded_at: at,
        })
    }
}

/// The legs that undo what the reversal's original transfer posted: each on the other side, for the
/// amount posted.
fn mirrored_legs(ledger: &Ledger, reversal: &ReversalSpec) -> Result<Vec<LegSpec>, DomainError> {
    let original =
        ledger
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
    Ok(original
        .legs
        .iter()
        .zip(posted)
        .map(|(leg, amount)| LegSpec {
            account: leg.account.clone(),
            side: leg.side.opposite(),
            amount: *amount,
            currency: leg.currency.clone(),
        })
        .collect())
}
