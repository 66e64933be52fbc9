//! What both projection paths write the same way: a row of `transfers` (built by `live/apply` and by
//! the rebuild's fold in `rebuild/fold.rs`) and its binary `COPY` encoding, and the spelling of values.

use crate::copy::CopyRows;
use crate::stored::At;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tally_domain::{
    AccountCode, AccountType, Amount, Correction, Currency, LegSpec, Limits, Metadata,
    ReversalSpec, Side, TransferSpec,
};
use uuid::Uuid;

/// How `read` spells a side.
pub(crate) fn side(s: Side) -> &'static str {
    match s {
        Side::Debit => "debit",
        Side::Credit => "credit",
    }
}

/// The serde name of a unit enum variant (`asset`, `debit`).
pub(crate) fn json_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// What an `AccountOpened` event says.
pub(crate) struct OpenedAccount {
    pub code: AccountCode,
    pub account_type: AccountType,
    pub currency: Currency,
    pub limits: Limits,
    pub metadata: Metadata,
}

/// The transfer a leg is booked for, as its statement entries show it. The description is kept on
/// every entry so that a statement page reads one index range instead of a transfer lookup per row.
pub(crate) struct Booking<'a> {
    pub transfer_id: Uuid,
    pub description: &'a str,
    pub effective_at: DateTime<Utc>,
}

impl Booking<'_> {
    /// A reversal's: it has no description of its own, its transfer row says what it reverses.
    pub(crate) fn reversal(transfer_id: Uuid, effective_at: DateTime<Utc>) -> Self {
        Self {
            transfer_id,
            description: "",
            effective_at,
        }
    }
}

/// One leg of a booking and the amount it posts.
pub(crate) struct Posting<'a> {
    pub index: usize,
    pub leg: &'a LegSpec,
    pub amount: i128,
}

impl<'a> Posting<'a> {
    /// The leg's whole amount.
    pub(crate) fn whole(index: usize, leg: &'a LegSpec) -> Self {
        Self {
            index,
            leg,
            amount: leg.amount.get(),
        }
    }
}

/// An account's posted and pending totals, as `read.accounts` keeps them.
#[derive(Default, Clone, Copy)]
pub(crate) struct Balances {
    pub debits_posted: i128,
    pub credits_posted: i128,
    pub debits_pending: i128,
    pub credits_pending: i128,
}

impl Balances {
    /// Moves the posted total of `side` by `amount`.
    pub(crate) fn post(&mut self, side: Side, amount: i128) {
        match side {
            Side::Debit => self.debits_posted += amount,
            Side::Credit => self.credits_posted += amount,
        }
    }

    /// Moves the pending total of `side` by `delta` (negative when a reservation is released).
    pub(crate) fn reserve(&mut self, side: Side, delta: i128) {
        match side {
            Side::Debit => self.debits_pending += delta,
            Side::Credit => self.credits_pending += delta,
        }
    }
}

/// A day's posted movements on an account, as `read.daily_volumes` keeps them.
pub(crate) struct Volume {
    pub currency: String,
    pub debits: i128,
    pub credits: i128,
    pub entries: i64,
}

impl Volume {
    pub(crate) fn new(currency: &str) -> Self {
        Self {
            currency: currency.to_owned(),
            debits: 0,
            credits: 0,
            entries: 0,
        }
    }

    /// Counts one entry of `amount` on `side`.
    pub(crate) fn add(&mut self, side: Side, amount: i128) {
        match side {
            Side::Debit => self.debits += amount,
            Side::Credit => self.credits += amount,
        }
        self.entries += 1;
    }
}

/// Every column of a transfer's row but its ledger and id, which the callers key rows by.
pub(crate) struct TransferRow {
    pub status: &'static str,
    pub legs: Vec<LegSpec>,
    pub posted: Option<Vec<Amount>>,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub description: String,
    pub metadata: Value,
    pub reverses: Option<Uuid>,
    pub corrects: Option<Uuid>,
    pub reason: Option<String>,
    pub reversed_by: Option<Uuid>,
    pub created_version: i64,
    pub version: i64,
}

impl TransferRow {
    /// The row of a transfer the event at `at` creates; a posted one's amounts are its legs'.
    pub(crate) fn created(
        transfer: TransferSpec,
        status: &'static str,
        effective_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        at: &At,
    ) -> Self {
        let posted = (status == "posted").then(|| transfer.legs.iter().map(|l| l.amount).collect());
        Self {
            status,
            posted,
            effective_at,
            recorded_at: at.recorded_at,
            expires_at,
            metadata: serde_json::to_value(&transfer.metadata).unwrap_or_default(),
            description: transfer.description,
            legs: transfer.legs,
            reverses: None,
            corrects: None,
            reason: None,
            reversed_by: None,
            created_version: at.version,
            version: at.version,
        }
    }

    /// The row of a posted transfer, linked to the one it corrects if it is a rebooking.
    pub(crate) fn posted(
        transfer: TransferSpec,
        correction: Option<&Correction>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) -> Self {
        let mut row = Self::created(transfer, "posted", effective_at, None, at);
        if let Some(c) = correction {
            row.corrects = Some(c.of.0);
            row.reason = Some(c.reason.as_str().to_owned());
        }
        row
    }

    /// The row of a reversal: no description or metadata of its own, it says what it reverses.
    pub(crate) fn reversal(
        reversal: &ReversalSpec,
        legs: Vec<LegSpec>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) -> Self {
        let spec = TransferSpec {
            id: reversal.id,
            legs,
            effective_at: Some(effective_at),
            description: String::new(),
            metadata: Default::default(),
            pending: None,
        };
        let mut row = Self::created(spec, "posted", effective_at, None, at);
        row.reverses = Some(reversal.original.0);
        row.reason = Some(reversal.reason.as_str().to_owned());
        row
    }

    /// Appends the row in the field order of [`crate::copy::copy_transfers`].
    pub(crate) fn copy_into(&self, rows: &mut CopyRows, ledger: &str, id: Uuid) {
        rows.text(ledger)
            .uuid(id)
            .text(self.status)
            .json(&self.legs);
        match &self.posted {
            Some(posted) => rows.json(posted),
            None => rows.null(),
        };
        rows.time(self.effective_at)
            .time(self.recorded_at)
            .opt_time(self.expires_at)
            .text(&self.description)
            .json(&self.metadata)
            .opt_uuid(self.reverses)
            .opt_uuid(self.corrects)
            .opt_text(self.reason.as_deref())
            .opt_uuid(self.reversed_by)
            .int8(self.created_version)
            .int8(self.version);
        rows.close_row();
    }
}
