//! The rebuild's fold, one function per event: a ledger's whole stream, read in pages in parallel, folded
//! in memory into the rows the incremental projection would have produced. The `differences` check
//! compares the two paths, so they cannot drift apart unnoticed; only the row types of `rows.rs` are
//! shared, and the tests check their text against what was posted.

use crate::error::ProjectionError;
use crate::rows::{Balances, Booking, OpenedAccount, Posting, TransferRow, Volume, json_str};
use crate::stored::{At, Decoded, decode};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{StreamExt, stream};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tally_domain::{
    AccountCode, Amount, Correction, Event, LegSpec, Limits, Metadata, ReversalSpec, Side,
    TransferSpec,
};
use tally_eventstore::EventStore;
use tokio::sync::mpsc;
use uuid::Uuid;

pub(super) struct AccountRow {
    /// The code again, shared by the account's entries instead of copied into each.
    pub(super) code: Arc<str>,
    pub(super) account_type: String,
    pub(super) normal: Side,
    pub(super) currency: String,
    pub(super) scale: i16,
    pub(super) status: &'static str,
    pub(super) floor: Option<i128>,
    pub(super) ceiling: Option<i128>,
    pub(super) metadata: Value,
    pub(super) balances: Balances,
    pub(super) version: i64,
    /// Business time of the account's last entry (`read.accounts.last_entry_at`).
    pub(super) last_entry_at: Option<DateTime<Utc>>,
}

pub(super) struct EntryRow {
    pub(super) account: Arc<str>,
    pub(super) effective_at: DateTime<Utc>,
    pub(super) version: i64,
    pub(super) leg: i32,
    pub(super) transfer_id: Uuid,
    /// The transfer's, kept on each entry as `read.entries` does.
    pub(super) description: String,
    pub(super) side: Side,
    pub(super) amount: i128,
    pub(super) recorded_at: DateTime<Utc>,
}

/// A transfer of the fold, and its id.
pub(super) struct FoldedTransfer {
    pub(super) id: Uuid,
    pub(super) row: TransferRow,
}

/// A ledger's stream folded into the rows it projects to.
#[derive(Default)]
pub(crate) struct Fold {
    pub(super) name: String,
    pub(super) created_at: Option<DateTime<Utc>>,
    pub(super) closed_through: Option<DateTime<Utc>>,
    pub(super) version: i64,
    pub(super) position: i64,
    pub(super) accounts: BTreeMap<String, AccountRow>,
    /// In creation order, which is the order they are loaded in; `transfer_at` finds one by id.
    pub(super) transfers: Vec<FoldedTransfer>,
    pub(super) transfer_at: HashMap<Uuid, usize>,
    pub(super) entries: Vec<EntryRow>,
    pub(super) volumes: BTreeMap<(String, NaiveDate), Volume>,
}

impl Fold {
    /// A fold sized for a stream of `events` events, most of them two-leg transfers: reserved but
    /// untouched capacity costs nothing, where growing by doubling copies the rows again and again.
    fn sized_for(events: i64) -> Self {
        let events = usize::try_from(events).unwrap_or(0);
        Self {
            transfers: Vec::with_capacity(events),
            transfer_at: HashMap::with_capacity(events),
            entries: Vec::with_capacity(events.saturating_mul(2)),
            ..Self::default()
        }
    }

    /// Events folded: a stream's versions start at 1 and have no gaps.
    pub(crate) fn events(&self) -> u64 {
        self.version.unsigned_abs()
    }

    fn apply(&mut self, at: &At, event: Event) {
        match event {
            Event::LedgerCreated { name, created_at } => {
                self.name = name;
                self.created_at = Some(created_at);
            }
            Event::AccountOpened {
                code,
                account_type,
                currency,
                limits,
                metadata,
            } => {
                let account = OpenedAccount {
                    code,
                    account_type,
                    currency,
                    limits,
                    metadata,
                };
                self.open_account(account, at);
            }
            Event::AccountFrozen { code } => self.set_status(&code, "frozen", at),
            Event::AccountUnfrozen { code } => self.set_status(&code, "open", at),
            Event::AccountClosed { code } => self.set_status(&code, "closed", at),
            Event::AccountLimitsChanged { code, limits } => self.change_limits(&code, &limits, at),
            Event::AccountMetadataChanged { code, metadata } => {
                self.change_metadata(&code, &metadata, at)
            }
            Event::TransferPosted {
                transfer,
                recorded_at,
                correction,
                ..
            } => {
                let effective_at = transfer.effective_at.unwrap_or(recorded_at);
                self.post_transfer(transfer, correction, effective_at, at);
            }
            Event::TransferReserved {
                transfer,
                recorded_at,
                expires_at,
                ..
            } => {
                let effective_at = transfer.effective_at.unwrap_or(recorded_at);
                self.reserve_transfer(transfer, effective_at, expires_at, at);
            }
            Event::PendingTransferPosted {
                id,
                amounts,
                effective_at,
                ..
            } => self.post_pending(id.0, amounts, effective_at, at),
            Event::PendingTransferVoided { id, .. } => self.release(id.0, "voided", at),
            Event::PendingTransferExpired { id, .. } => self.release(id.0, "expired", at),
            Event::TransferReversed {
                reversal,
                legs,
                effective_at,
                ..
            } => self.reverse_transfer(reversal, legs, effective_at, at),
            Event::PeriodClosed { through, .. } => self.closed_through = Some(through),
        }
    }

    fn open_account(&mut self, account: OpenedAccount, at: &At) {
        let code = account.code.as_str();
        let row = AccountRow {
            code: Arc::from(code),
            account_type: json_str(&account.account_type),
            normal: account.account_type.normal_side(),
            currency: account.currency.code.as_str().to_owned(),
            scale: i16::from(account.currency.scale),
            status: "open",
            floor: account.limits.floor,
            ceiling: account.limits.ceiling,
            metadata: serde_json::to_value(&account.metadata).unwrap_or_default(),
            balances: Balances::default(),
            version: at.version,
            last_entry_at: None,
        };
        self.accounts.insert(code.to_owned(), row);
    }

    /// The account's row, changed by the event at `at`.
    fn account(&mut self, code: &str, at: &At) -> Option<&mut AccountRow> {
        let account = self.accounts.get_mut(code)?;
        account.version = at.version;
        Some(account)
    }

    fn set_status(&mut self, code: &AccountCode, status: &'static str, at: &At) {
        if let Some(a) = self.account(code.as_str(), at) {
            a.status = status;
        }
    }

    fn change_limits(&mut self, code: &AccountCode, limits: &Limits, at: &At) {
        if let Some(a) = self.account(code.as_str(), at) {
            a.floor = limits.floor;
            a.ceiling = limits.ceiling;
        }
    }

    fn change_metadata(&mut self, code: &AccountCode, metadata: &Metadata, at: &At) {
        if let Some(a) = self.account(code.as_str(), at) {
            a.metadata = serde_json::to_value(metadata).unwrap_or_default();
        }
    }

    fn post_transfer(
        &mut self,
        transfer: TransferSpec,
        correction: Option<Correction>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) {
        let booking = Booking {
            transfer_id: transfer.id.0,
            description: &transfer.description,
            effective_at,
        };
        for (index, leg) in transfer.legs.iter().enumerate() {
            self.post(at, &booking, Posting::whole(index, leg));
        }
        let id = transfer.id.0;
        let row = TransferRow::posted(transfer, correction.as_ref(), effective_at, at);
        self.insert_transfer(id, row);
    }

    fn reserve_transfer(
        &mut self,
        transfer: TransferSpec,
        effective_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        at: &At,
    ) {
        for leg in &transfer.legs {
            self.reserve(leg, leg.amount.get(), at);
        }
        let id = transfer.id.0;
        let row = TransferRow::created(transfer, "pending", effective_at, Some(expires_at), at);
        self.insert_transfer(id, row);
    }

    /// Posts a pending transfer (in full or in part): its reservation is released, `amounts` booked.
    fn post_pending(
        &mut self,
        id: Uuid,
        amounts: Vec<Amount>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) {
        let Some((legs, description)) = self
            .transfer(&id)
            .map(|t| (t.legs.clone(), t.description.clone()))
        else {
            return;
        };
        let booking = Booking {
            transfer_id: id,
            description: &description,
            effective_at,
        };
        for (index, (leg, amount)) in legs.iter().zip(&amounts).enumerate() {
            self.reserve(leg, -leg.amount.get(), at);
            let amount = amount.get();
            self.post(at, &booking, Posting { index, leg, amount });
        }
        if let Some(t) = self.transfer_mut(&id) {
            t.status = "posted";
            t.posted = Some(amounts);
            t.effective_at = effective_at;
            t.version = at.version;
        }
    }

    /// Voids or expires a pending transfer: its reservation is released.
    fn release(&mut self, id: Uuid, status: &'static str, at: &At) {
        let Some(legs) = self.transfer(&id).map(|t| t.legs.clone()) else {
            return;
        };
        for leg in &legs {
            self.reserve(leg, -leg.amount.get(), at);
        }
        if let Some(t) = self.transfer_mut(&id) {
            t.status = status;
            t.version = at.version;
        }
    }

    /// Books the mirrored legs as a new transfer and marks the original reversed.
    fn reverse_transfer(
        &mut self,
        reversal: ReversalSpec,
        legs: Vec<LegSpec>,
        effective_at: DateTime<Utc>,
        at: &At,
    ) {
        let id = reversal.id.0;
        let booking = Booking::reversal(id, effective_at);
        for (index, leg) in legs.iter().enumerate() {
            self.post(at, &booking, Posting::whole(index, leg));
        }
        if let Some(original) = self.transfer_mut(&reversal.original.0) {
            original.status = "reversed";
            original.reversed_by = Some(id);
            original.version = at.version;
        }
        let row = TransferRow::reversal(&reversal, legs, effective_at, at);
        self.insert_transfer(id, row);
    }

    fn transfer(&self, id: &Uuid) -> Option<&TransferRow> {
        self.transfer_at.get(id).map(|&i| &self.transfers[i].row)
    }

    fn transfer_mut(&mut self, id: &Uuid) -> Option<&mut TransferRow> {
        self.transfer_at
            .get(id)
            .map(|&i| &mut self.transfers[i].row)
    }

    /// Records a new transfer. Ids are unique per ledger; should one come again, the later row wins,
    /// in its original place.
    fn insert_transfer(&mut self, id: Uuid, row: TransferRow) {
        match self.transfer_at.get(&id) {
            Some(&i) => self.transfers[i].row = row,
            None => {
                self.transfer_at.insert(id, self.transfers.len());
                self.transfers.push(FoldedTransfer { id, row });
            }
        }
    }

    /// Moves the pending total of `leg`'s side on its account by `delta`.
    fn reserve(&mut self, leg: &LegSpec, delta: i128, at: &At) {
        if let Some(a) = self.account(leg.account.as_str(), at) {
            a.balances.reserve(leg.side, delta);
        }
    }

    /// Books one posted leg: its entry (running balances come when entries are sorted, in
    /// `send_entries`), the account's totals and the day's volume.
    fn post(&mut self, at: &At, booking: &Booking<'_>, posting: Posting<'_>) {
        let (leg, amount, effective_at) = (posting.leg, posting.amount, booking.effective_at);
        let account = match self.account(leg.account.as_str(), at) {
            Some(a) => {
                a.balances.post(leg.side, amount);
                a.last_entry_at = a.last_entry_at.max(Some(effective_at));
                a.code.clone()
            }
            None => Arc::from(leg.account.as_str()),
        };
        self.entries.push(EntryRow {
            account,
            effective_at,
            version: at.version,
            leg: posting.index as i32,
            transfer_id: booking.transfer_id,
            description: booking.description.to_owned(),
            side: leg.side,
            amount,
            recorded_at: at.recorded_at,
        });
        self.volumes
            .entry((leg.account.as_str().to_owned(), effective_at.date_naive()))
            .or_insert_with(|| Volume::new(leg.currency.as_str()))
            .add(leg.side, amount);
    }
}

/// Events per page read from the store: large enough to amortise the round trip, small enough that
/// the pages in flight stay a few megabytes.
const PAGE: i64 = 5_000;
/// Pages read and decoded at once, each on a connection and task of its own: turning payloads into
/// text is PostgreSQL's largest cost in reading, and decoding them the fold's, so both run on every
/// core while the fold takes the pages in order.
const PAGES_AT_ONCE: usize = 3;

async fn read_page(
    store: &EventStore,
    ledger: &str,
    after: i64,
) -> Result<Vec<Decoded>, ProjectionError> {
    let page = store.read_stream_payloads(ledger, after, PAGE).await?;
    page.iter().map(|e| decode(ledger, e)).collect()
}

/// Reads and decodes `ledger`'s stream up to version `head`, pages in parallel, and hands them over in
/// version order. Stream versions have no gaps, so the pages are known in advance; the fold checks it.
/// The channel ends after the last page or the first error.
fn read_ahead(
    store: EventStore,
    ledger: String,
    head: i64,
) -> mpsc::Receiver<Result<Vec<Decoded>, ProjectionError>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let pages = (0..)
            .map(|n| n * PAGE)
            .take_while(move |after| *after < head);
        let mut pages = stream::iter(pages)
            .map(|after| {
                let (store, ledger) = (store.clone(), ledger.clone());
                tokio::spawn(async move { read_page(&store, &ledger, after).await })
            })
            .buffered(PAGES_AT_ONCE);
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| Err(e.into()));
            let failed = page.is_err();
            if tx.send(page).await.is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Reads and folds `ledger`'s stream up to version `head` into the rows it projects to.
pub(crate) async fn fold_ledger(
    store: &EventStore,
    ledger: &str,
    head: i64,
) -> Result<Fold, ProjectionError> {
    let mut fold = Fold::sized_for(head);
    let mut pages = read_ahead(store.clone(), ledger.to_owned(), head);
    while let Some(page) = pages.recv().await {
        for Decoded {
            at,
            position,
            event,
        } in page?
        {
            if at.version != fold.version + 1 {
                return Err(ProjectionError::Inconsistent {
                    ledger: ledger.to_owned(),
                    reason: format!("version {} read after {}", at.version, fold.version),
                });
            }
            fold.apply(&at, event);
            fold.version = at.version;
            fold.position = position;
        }
    }
    Ok(fold)
}
