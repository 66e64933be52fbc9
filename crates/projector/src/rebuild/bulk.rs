//! The fast path of a rebuild: fold a ledger's whole stream in memory into the rows the incremental
//! projection would have produced, then write each table with a few set-based statements. The
//! `differences` check compares the two paths, so they cannot drift apart unnoticed; only the encoding
//! of a transfer row (`rows.rs`) is shared, and the tests check its text against what was posted.

use super::load::Sink;
use crate::copy::CopyRows;
use crate::error::ProjectionError;
use crate::live::At;
use crate::live::PROJECTION;
use crate::rows::TransferRow;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{StreamExt, stream};
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tally_domain::{Amount, Envelope, Event, LegSpec, Side};
use tally_eventstore::EventStore;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Rows per insert statement: large enough to amortise the round trip, small enough for bind limits.
const CHUNK: usize = 20_000;

fn side(s: Side) -> &'static str {
    match s {
        Side::Debit => "debit",
        Side::Credit => "credit",
    }
}

fn json_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

struct AccountRow {
    /// The code again, shared by the account's entries instead of copied into each.
    code: Arc<str>,
    account_type: String,
    normal: Side,
    currency: String,
    scale: i16,
    status: &'static str,
    floor: Option<i128>,
    ceiling: Option<i128>,
    metadata: Value,
    totals: [i128; 4],
    version: i64,
    /// Business time of the account's last entry (`read.accounts.last_entry_at`).
    last_entry_at: Option<DateTime<Utc>>,
}

struct EntryRow {
    account: Arc<str>,
    effective_at: DateTime<Utc>,
    version: i64,
    leg: i32,
    transfer_id: Uuid,
    /// The transfer's, kept on each entry as `read.entries` does.
    description: String,
    side: Side,
    amount: i128,
    recorded_at: DateTime<Utc>,
}

/// A ledger's stream folded into the rows it projects to.
#[derive(Default)]
pub(crate) struct Fold {
    name: String,
    created_at: Option<DateTime<Utc>>,
    closed_through: Option<DateTime<Utc>>,
    version: i64,
    position: i64,
    accounts: BTreeMap<String, AccountRow>,
    /// In creation order, which is the order they are loaded in; `transfer_at` finds one by id.
    transfers: Vec<(Uuid, TransferRow)>,
    transfer_at: HashMap<Uuid, usize>,
    entries: Vec<EntryRow>,
    volumes: BTreeMap<(String, NaiveDate), (String, i128, i128, i64)>,
}

impl Fold {
    /// A fold sized for a stream of `events` events, most of them two-leg transfers. Reserved but
    /// untouched capacity costs nothing, while growing these by doubling copies hundreds of megabytes
    /// into freshly faulted pages: that was a sixth of a large rebuild's time.
    fn sized_for(events: i64) -> Self {
        let events = usize::try_from(events).unwrap_or(0);
        Self {
            transfers: Vec::with_capacity(events),
            transfer_at: HashMap::with_capacity(events),
            entries: Vec::with_capacity(events.saturating_mul(2)),
            ..Self::default()
        }
    }

    fn account(&mut self, code: &str) -> Option<&mut AccountRow> {
        self.accounts.get_mut(code)
    }

    fn transfer(&self, id: &Uuid) -> Option<&TransferRow> {
        self.transfer_at.get(id).map(|&i| &self.transfers[i].1)
    }

    fn transfer_mut(&mut self, id: &Uuid) -> Option<&mut TransferRow> {
        self.transfer_at.get(id).map(|&i| &mut self.transfers[i].1)
    }

    /// Records a new transfer. Ids are unique per ledger; should one come again, the later row wins,
    /// in its original place.
    fn insert_transfer(&mut self, id: Uuid, row: TransferRow) {
        match self.transfer_at.get(&id) {
            Some(&i) => self.transfers[i].1 = row,
            None => {
                self.transfer_at.insert(id, self.transfers.len());
                self.transfers.push((id, row));
            }
        }
    }

    fn pending(&mut self, leg: &LegSpec, delta: i128, v: i64) {
        if let Some(a) = self.account(leg.account.as_str()) {
            a.totals[if leg.side == Side::Debit { 2 } else { 3 }] += delta;
            a.version = v;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn post(
        &mut self,
        at: &At,
        id: Uuid,
        description: &str,
        i: usize,
        leg: &LegSpec,
        amount: i128,
        effective_at: DateTime<Utc>,
    ) {
        let account = match self.account(leg.account.as_str()) {
            Some(a) => {
                a.totals[if leg.side == Side::Debit { 0 } else { 1 }] += amount;
                a.version = at.version;
                a.last_entry_at = a.last_entry_at.max(Some(effective_at));
                a.code.clone()
            }
            None => Arc::from(leg.account.as_str()),
        };
        self.entries.push(EntryRow {
            account,
            effective_at,
            version: at.version,
            leg: i as i32,
            transfer_id: id,
            description: description.to_owned(),
            side: leg.side,
            amount,
            recorded_at: at.recorded_at,
        });
        let volume = self
            .volumes
            .entry((leg.account.as_str().to_owned(), effective_at.date_naive()))
            .or_insert_with(|| (leg.currency.as_str().to_owned(), 0, 0, 0));
        match leg.side {
            Side::Debit => volume.1 += amount,
            Side::Credit => volume.2 += amount,
        }
        volume.3 += 1;
    }

    fn apply(&mut self, v: i64, recorded: DateTime<Utc>, event: Event) {
        let at = At {
            version: v,
            recorded_at: recorded,
        };
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
                self.accounts.insert(
                    code.as_str().to_owned(),
                    AccountRow {
                        code: Arc::from(code.as_str()),
                        account_type: json_str(&account_type),
                        normal: account_type.normal_side(),
                        currency: currency.code.as_str().to_owned(),
                        scale: i16::from(currency.scale),
                        status: "open",
                        floor: limits.floor,
                        ceiling: limits.ceiling,
                        metadata: serde_json::to_value(&metadata).unwrap_or_default(),
                        totals: [0; 4],
                        version: v,
                        last_entry_at: None,
                    },
                );
            }
            Event::AccountFrozen { code } => self.status(code.as_str(), "frozen", v),
            Event::AccountUnfrozen { code } => self.status(code.as_str(), "open", v),
            Event::AccountClosed { code } => self.status(code.as_str(), "closed", v),
            Event::AccountLimitsChanged { code, limits } => {
                if let Some(a) = self.account(code.as_str()) {
                    a.floor = limits.floor;
                    a.ceiling = limits.ceiling;
                    a.version = v;
                }
            }
            Event::AccountMetadataChanged { code, metadata } => {
                if let Some(a) = self.account(code.as_str()) {
                    a.metadata = serde_json::to_value(&metadata).unwrap_or_default();
                    a.version = v;
                }
            }
            Event::TransferPosted {
                transfer,
                recorded_at,
                correction,
                ..
            } => {
                let effective_at = transfer.effective_at.unwrap_or(recorded_at);
                let id = transfer.id.0;
                for (i, leg) in transfer.legs.iter().enumerate() {
                    let description = &transfer.description;
                    self.post(&at, id, description, i, leg, leg.amount.get(), effective_at);
                }
                let amounts: Vec<Amount> = transfer.legs.iter().map(|l| l.amount).collect();
                self.insert_transfer(
                    id,
                    TransferRow {
                        status: "posted",
                        posted: Some(amounts),
                        effective_at,
                        recorded_at: recorded,
                        expires_at: None,
                        description: transfer.description.clone(),
                        metadata: serde_json::to_value(&transfer.metadata).unwrap_or_default(),
                        reverses: None,
                        corrects: correction.as_ref().map(|c| c.of.0),
                        reason: correction.as_ref().map(|c| c.reason.as_str().to_owned()),
                        reversed_by: None,
                        created_version: v,
                        version: v,
                        legs: transfer.legs,
                    },
                );
            }
            Event::TransferReserved {
                transfer,
                recorded_at,
                expires_at,
                ..
            } => {
                for leg in &transfer.legs {
                    self.pending(leg, leg.amount.get(), v);
                }
                self.insert_transfer(
                    transfer.id.0,
                    TransferRow {
                        status: "pending",
                        posted: None,
                        effective_at: transfer.effective_at.unwrap_or(recorded_at),
                        recorded_at: recorded,
                        expires_at: Some(expires_at),
                        description: transfer.description.clone(),
                        metadata: serde_json::to_value(&transfer.metadata).unwrap_or_default(),
                        reverses: None,
                        corrects: None,
                        reason: None,
                        reversed_by: None,
                        created_version: v,
                        version: v,
                        legs: transfer.legs,
                    },
                );
            }
            Event::PendingTransferPosted {
                id,
                amounts,
                effective_at,
                ..
            } => {
                let Some((legs, description)) = self
                    .transfer(&id.0)
                    .map(|t| (t.legs.clone(), t.description.clone()))
                else {
                    return;
                };
                for (i, (leg, amount)) in legs.iter().zip(&amounts).enumerate() {
                    self.pending(leg, -leg.amount.get(), v);
                    self.post(&at, id.0, &description, i, leg, amount.get(), effective_at);
                }
                if let Some(t) = self.transfer_mut(&id.0) {
                    t.status = "posted";
                    t.posted = Some(amounts);
                    t.effective_at = effective_at;
                    t.version = v;
                }
            }
            Event::PendingTransferVoided { id, .. } => self.release(id.0, "voided", v),
            Event::PendingTransferExpired { id, .. } => self.release(id.0, "expired", v),
            Event::TransferReversed {
                reversal,
                legs,
                effective_at,
                ..
            } => {
                let id = reversal.id.0;
                for (i, leg) in legs.iter().enumerate() {
                    self.post(&at, id, "", i, leg, leg.amount.get(), effective_at);
                }
                if let Some(original) = self.transfer_mut(&reversal.original.0) {
                    original.status = "reversed";
                    original.reversed_by = Some(id);
                    original.version = v;
                }
                let amounts: Vec<Amount> = legs.iter().map(|l| l.amount).collect();
                self.insert_transfer(
                    id,
                    TransferRow {
                        status: "posted",
                        posted: Some(amounts),
                        effective_at,
                        recorded_at: recorded,
                        expires_at: None,
                        description: String::new(),
                        metadata: serde_json::json!({}),
                        reverses: Some(reversal.original.0),
                        corrects: None,
                        reason: Some(reversal.reason.as_str().to_owned()),
                        reversed_by: None,
                        created_version: v,
                        version: v,
                        legs,
                    },
                );
            }
            Event::PeriodClosed { through, .. } => self.closed_through = Some(through),
        }
    }

    fn status(&mut self, code: &str, status: &'static str, v: i64) {
        if let Some(a) = self.account(code) {
            a.status = status;
            a.version = v;
        }
    }

    fn release(&mut self, id: Uuid, status: &'static str, v: i64) {
        let Some(legs) = self.transfer(&id).map(|t| t.legs.clone()) else {
            return;
        };
        for leg in &legs {
            self.pending(leg, -leg.amount.get(), v);
        }
        if let Some(t) = self.transfer_mut(&id) {
            t.status = status;
            t.version = v;
        }
    }
}

/// Events per page read from the store: large enough to amortise the round trip, small enough that
/// the pages in flight stay a few megabytes.
const PAGE: i64 = 5_000;
/// Pages read and decoded at once, each on a connection and task of its own: turning payloads into
/// text is PostgreSQL's largest cost in reading, and decoding them the fold's, so both run on every
/// core while the fold takes the pages in order.
const PAGES_AT_ONCE: usize = 3;

type Decoded = (i64, i64, DateTime<Utc>, Event);

async fn read_page(
    store: &EventStore,
    ledger: &str,
    after: i64,
) -> Result<Vec<Decoded>, ProjectionError> {
    let page = store.read_stream_payloads(ledger, after, PAGE).await?;
    page.into_iter()
        .map(|e| {
            let envelope = Envelope {
                event_type: &e.event_type,
                schema_version: e.schema_version,
                recorded_at: e.recorded_at,
            };
            let event = Event::decode_str(envelope, &e.payload).map_err(|err| {
                ProjectionError::Undecodable {
                    ledger: ledger.to_owned(),
                    version: e.version,
                    reason: err.to_string(),
                }
            })?;
            Ok((e.version, e.position, e.recorded_at, event))
        })
        .collect()
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

/// Where one ledger's transfers and entries go: each table is loaded by one `COPY` for every ledger.
pub(crate) struct Sinks {
    pub(crate) transfers: Sink,
    pub(crate) entries: Sink,
}

impl Fold {
    /// Events folded: a stream's versions start at 1 and have no gaps.
    pub(crate) fn events(&self) -> u64 {
        self.version.unsigned_abs()
    }
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
        for (version, position, recorded_at, event) in page? {
            if version != fold.version + 1 {
                return Err(ProjectionError::Inconsistent {
                    ledger: ledger.to_owned(),
                    reason: format!("version {version} read after {}", fold.version),
                });
            }
            fold.apply(version, recorded_at, event);
            fold.version = version;
            fold.position = position;
        }
    }
    Ok(fold)
}

/// Writes a folded ledger into the empty tables of `schema`: the small tables directly, transfers and
/// entries through `sinks`. Owns its arguments so that it can run on a task
/// of its own while the next ledgers are read.
pub(crate) async fn write_ledger(
    pool: PgPool,
    schema: String,
    ledger: String,
    mut fold: Fold,
    sinks: Sinks,
) -> Result<(), ProjectionError> {
    if fold.version == 0 {
        sinks.transfers.end().await?;
        sinks.entries.end().await?;
        return Ok(());
    }
    let transfers = std::mem::take(&mut fold.transfers);
    let entries = std::mem::take(&mut fold.entries);
    let normals: HashMap<String, Side> = fold
        .accounts
        .iter()
        .map(|(code, a)| (code.clone(), a.normal))
        .collect();
    // Each on a task of its own, so that both encoders and the small tables' statements run at once.
    let encode_transfers = tokio::spawn(send_transfers(ledger.clone(), transfers, sinks.transfers));
    let encode_entries = tokio::spawn(send_entries(
        ledger.clone(),
        entries,
        normals,
        sinks.entries,
    ));
    let small = write_small(&pool, &schema, &ledger, fold).await;
    encode_transfers.await??;
    encode_entries.await??;
    small?;
    Ok(())
}

async fn send_transfers(
    ledger: String,
    transfers: Vec<(Uuid, TransferRow)>,
    sink: Sink,
) -> Result<(), ProjectionError> {
    // The fold keeps them in creation order, the order of the index listings page by (and close to
    // that of the one by last change), so that its build finds them sorted.
    let mut rows = CopyRows::new();
    for (id, t) in &transfers {
        t.copy_into(&mut rows, &ledger, *id);
        rows.end_row(&sink).await?;
    }
    rows.flush(&sink).await?;
    sink.end().await
}

async fn send_entries(
    ledger: String,
    mut entries: Vec<EntryRow>,
    normals: HashMap<String, Side>,
    sink: Sink,
) -> Result<(), ProjectionError> {
    // Running balances in business-time order, per account, exactly as the incremental path keeps them;
    // also the primary key's order, so that its build finds the rows sorted.
    entries.sort_unstable_by(|a, b| {
        (&a.account, a.effective_at, a.version, a.leg).cmp(&(
            &b.account,
            b.effective_at,
            b.version,
            b.leg,
        ))
    });
    let mut rows = CopyRows::new();
    let mut running = 0i128;
    for (i, e) in entries.iter().enumerate() {
        if i == 0 || entries[i - 1].account != e.account {
            running = 0;
        }
        let normal = normals.get(&*e.account).copied().unwrap_or(Side::Debit);
        running += if e.side == normal {
            e.amount
        } else {
            -e.amount
        };
        rows.text(&ledger)
            .text(&e.account)
            .time(e.effective_at)
            .int8(e.version)
            .int4(e.leg)
            .uuid(e.transfer_id)
            .text(side(e.side))
            .numeric(e.amount)
            .numeric(running)
            .time(e.recorded_at)
            .text(&e.description);
        rows.end_row(&sink).await?;
    }
    rows.flush(&sink).await?;
    sink.end().await
}

/// The ledger's row, its accounts, daily volumes and checkpoint, in one transaction.
async fn write_small(
    pool: &PgPool,
    schema: &str,
    ledger: &str,
    fold: Fold,
) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("set local search_path to {schema}, public"))
        .execute(&mut *tx)
        .await?;
    if let Some(created_at) = fold.created_at {
        sqlx::query("insert into ledgers (ledger_id, name, created_at, closed_through, version) values ($1, $2, $3, $4, $5)")
            .bind(ledger)
            .bind(&fold.name)
            .bind(created_at)
            .bind(fold.closed_through)
            .bind(fold.version)
            .execute(&mut *tx)
            .await?;
    }
    let accounts: Vec<(&String, &AccountRow)> = fold.accounts.iter().collect();
    for chunk in accounts.chunks(CHUNK) {
        let col = |f: &dyn Fn(&AccountRow) -> String| {
            chunk.iter().map(|(_, a)| f(a)).collect::<Vec<String>>()
        };
        sqlx::query(
            "insert into accounts (ledger_id, code, account_type, normal_side, currency, scale, status, floor, ceiling, \
             metadata, debits_posted, credits_posted, debits_pending, credits_pending, version, last_entry_at) \
             select $1, code, account_type, normal_side, currency, scale, status, floor::numeric, ceiling::numeric, \
                    metadata, dp::numeric, cp::numeric, dr::numeric, cr::numeric, version, last_entry_at \
             from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::text[], $8::text[], $9::text[], \
                         $10::jsonb[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int8[], $16::timestamptz[]) \
                  as t(code, account_type, normal_side, currency, scale, status, floor, ceiling, metadata, dp, cp, dr, cr, version, \
                       last_entry_at)",
        )
        .bind(ledger)
        .bind(chunk.iter().map(|(c, _)| (*c).clone()).collect::<Vec<_>>())
        .bind(col(&|a| a.account_type.clone()))
        .bind(col(&|a| side(a.normal).to_owned()))
        .bind(col(&|a| a.currency.clone()))
        .bind(chunk.iter().map(|(_, a)| a.scale).collect::<Vec<_>>())
        .bind(col(&|a| a.status.to_owned()))
        .bind(chunk.iter().map(|(_, a)| a.floor.map(|f| f.to_string())).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, a)| a.ceiling.map(|f| f.to_string())).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, a)| a.metadata.clone()).collect::<Vec<_>>())
        .bind(col(&|a| a.totals[0].to_string()))
        .bind(col(&|a| a.totals[1].to_string()))
        .bind(col(&|a| a.totals[2].to_string()))
        .bind(col(&|a| a.totals[3].to_string()))
        .bind(chunk.iter().map(|(_, a)| a.version).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, a)| a.last_entry_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    let volumes: Vec<_> = fold.volumes.into_iter().collect();
    for chunk in volumes.chunks(CHUNK) {
        sqlx::query(
            "insert into daily_volumes (ledger_id, account, day, currency, debits, credits, entries) \
             select $1, account, day, currency, debits::numeric, credits::numeric, entries \
             from unnest($2::text[], $3::date[], $4::text[], $5::text[], $6::text[], $7::int8[]) \
                  as t(account, day, currency, debits, credits, entries)",
        )
        .bind(ledger)
        .bind(chunk.iter().map(|((a, _), _)| a.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|((_, d), _)| *d).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, v)| v.0.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, v)| v.1.to_string()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, v)| v.2.to_string()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, v)| v.3).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("insert into checkpoints (projection, ledger_id, version, position) values ($1, $2, $3, $4)")
        .bind(PROJECTION)
        .bind(ledger)
        .bind(fold.version)
        .bind(fold.position)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
