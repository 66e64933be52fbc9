//! Live updates for the web UI: `GET /v1/ledgers/{ledger}/live` streams server-sent events as the read
//! model advances. One task per watched ledger reads what changed between two projected versions and
//! fans it out to every subscriber, so a thousand open pages cost one query per change, not a thousand.
//!
//! Events: `transfer` (a transfer created or changed, as `GET …/transfers/{id}` shows it), `balance` (an
//! account whose balances or state changed), `reset` (this subscriber fell behind: refetch). Each carries
//! the ledger version as its SSE id.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::Event;
use futures_util::Stream;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};

use crate::read;
use crate::versions::LedgerClock;

/// Buffered updates per ledger; a subscriber further behind gets `reset`.
const CHANNEL_CAPACITY: usize = 4096;
/// Changes read per round; a bigger jump is sent as `reset` so a burst cannot stall the hub.
const MAX_CHANGES: usize = 2000;

#[derive(Debug, Clone)]
pub enum LiveUpdate {
    Changes(Arc<Vec<(&'static str, i64, String)>>),
    Reset(i64),
}

#[derive(Clone)]
pub struct LiveHub {
    pool: PgPool,
    ledgers: Arc<Mutex<HashMap<String, broadcast::Sender<LiveUpdate>>>>,
    closing: watch::Receiver<bool>,
}

impl LiveHub {
    pub fn new(pool: PgPool, closing: watch::Receiver<bool>) -> Self {
        Self {
            pool,
            ledgers: Arc::new(Mutex::new(HashMap::new())),
            closing,
        }
    }

    /// A stream of SSE events for `ledger`, starting after the version `clock` is at now.
    pub fn subscribe(
        &self,
        ledger: &str,
        clock: Arc<LedgerClock>,
    ) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        let receiver = {
            let mut ledgers = match self.ledgers.lock() {
                Ok(map) => map,
                Err(poisoned) => poisoned.into_inner(),
            };
            match ledgers.get(ledger).filter(|tx| tx.receiver_count() > 0) {
                Some(sender) => sender.subscribe(),
                None => {
                    let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
                    ledgers.insert(ledger.to_owned(), sender.clone());
                    tokio::spawn(watch_ledger(
                        self.pool.clone(),
                        ledger.to_owned(),
                        clock.clone(),
                        sender,
                        self.ledgers.clone(),
                    ));
                    receiver
                }
            }
        };
        let hello = Event::default()
            .event("hello")
            .id(clock.projected().to_string())
            .data(format!("{{\"version\":{}}}", clock.projected()));
        let state = (
            receiver,
            self.closing.clone(),
            Some(hello),
            Vec::<Event>::new(),
        );
        futures_util::stream::unfold(
            state,
            |(mut receiver, mut closing, mut first, mut queued)| async move {
                if let Some(event) = first.take() {
                    return Some((Ok(event), (receiver, closing, first, queued)));
                }
                loop {
                    if let Some(event) = queued.pop() {
                        return Some((Ok(event), (receiver, closing, first, queued)));
                    }
                    if *closing.borrow() {
                        return None;
                    }
                    tokio::select! {
                        update = receiver.recv() => match update {
                            Ok(LiveUpdate::Changes(changes)) => {
                                // Reversed so `pop` yields them in order.
                                queued = changes
                                    .iter()
                                    .rev()
                                    .map(|(kind, version, data)| {
                                        Event::default().event(*kind).id(version.to_string()).data(data.clone())
                                    })
                                    .collect();
                            }
                            Ok(LiveUpdate::Reset(version)) => {
                                queued = vec![reset(version)];
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                queued = vec![reset(-1)];
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                        _ = closing.changed() => return None,
                    }
                }
            },
        )
    }
}

fn reset(version: i64) -> Event {
    Event::default()
        .event("reset")
        .data(format!("{{\"version\":{version}}}"))
}

/// Follows one ledger's projected version while anyone listens.
async fn watch_ledger(
    pool: PgPool,
    ledger: String,
    clock: Arc<LedgerClock>,
    sender: broadcast::Sender<LiveUpdate>,
    ledgers: Arc<Mutex<HashMap<String, broadcast::Sender<LiveUpdate>>>>,
) {
    let mut projected = clock.subscribe();
    let mut seen = *projected.borrow_and_update();
    loop {
        let changed = tokio::time::timeout(Duration::from_secs(15), projected.changed()).await;
        if sender.receiver_count() == 0 {
            break;
        }
        match changed {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => continue,
        }
        let now = *projected.borrow_and_update();
        if now <= seen {
            continue;
        }
        match changes(&pool, &ledger, seen, now).await {
            Ok(list) if list.len() <= MAX_CHANGES => {
                let _ = sender.send(LiveUpdate::Changes(Arc::new(list)));
            }
            Ok(_) => {
                let _ = sender.send(LiveUpdate::Reset(now));
            }
            Err(error) => {
                tracing::warn!(%error, ledger, "reading live changes failed");
                let _ = sender.send(LiveUpdate::Reset(now));
            }
        }
        seen = now;
    }
    if let Ok(mut map) = ledgers.lock()
        && map.get(&ledger).is_some_and(|tx| tx.same_channel(&sender))
    {
        map.remove(&ledger);
    }
}

async fn changes(
    pool: &PgPool,
    ledger: &str,
    after: i64,
    through: i64,
) -> Result<Vec<(&'static str, i64, String)>, crate::error::QueryError> {
    let mut out = Vec::new();
    for transfer in read::transfers_changed(pool, ledger, after, through).await? {
        let version = transfer.version;
        out.push((
            "transfer",
            version,
            serde_json::to_string(&transfer).unwrap_or_default(),
        ));
    }
    for account in read::accounts_changed(pool, ledger, after, through).await? {
        let version = account.version;
        out.push((
            "balance",
            version,
            serde_json::to_string(&account).unwrap_or_default(),
        ));
    }
    Ok(out)
}
