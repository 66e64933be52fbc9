//! The outbox relay: publishes every committed event to RabbitMQ, in stream order, with publisher
//! confirms, and checkpoints in PostgreSQL only what the broker confirmed. One relay is active at a time
//! (a PostgreSQL advisory lock); others wait as standbys.

use crate::amqp::{AmqpConfig, connect, declare_events_exchange};
use crate::backoff::{Reconnect, Sessions};
use crate::message::{EventBatch, routing_key, runs};
use futures_util::FutureExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener, PgPool};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tally_eventstore::{EventStore, StoreError};
use tokio::sync::mpsc;

/// Pages read and published ahead of the one being confirmed.
const PAGES_IN_FLIGHT: usize = 2;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub amqp: AmqpConfig,
    /// Names the checkpoint row and the advisory lock; relays with one name are one logical relay.
    pub name: String,
    /// Events read from the log per round: bounds memory and the size of one confirm round trip.
    pub page_size: i64,
    /// Events per message at most, so a message stays well below the broker's frame limits.
    pub max_events_per_message: usize,
    /// How long to sleep without a notification before looking anyway: events held back behind an
    /// older in-flight transaction become readable without a new append.
    pub idle_poll: Duration,
    /// Upper bound of the exponential back-off between reconnects.
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            amqp: AmqpConfig::default(),
            name: "main".into(),
            page_size: 2_000,
            max_events_per_message: 1_000,
            idle_poll: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused (nacked) a message")]
    Nacked,
    #[error("encode message: {0}")]
    Encode(#[from] serde_json::Error),
}

pub struct Relay {
    pool: PgPool,
    config: RelayConfig,
}

impl Relay {
    pub fn new(pool: PgPool, config: RelayConfig) -> Self {
        Self { pool, config }
    }

    /// Runs until `shutdown` completes, reconnecting with back-off after any failure of PostgreSQL or
    /// RabbitMQ. Whatever was published but not yet checkpointed is published again: consumers
    /// tolerate duplicates, never gaps.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        Reconnect::new(
            "relay",
            "tally_relay_reconnects_total",
            self.config.max_backoff,
        )
        .run(&self, shutdown)
        .await;
    }

    /// One session: wait for the lock, connect, publish until something fails (an error) or `shutdown`
    /// completes (`Ok`, after the page in flight is confirmed and checkpointed).
    async fn serve_session(
        &self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), RelayError> {
        // A dedicated connection holds the advisory lock; if it dies the lock goes with it and a standby
        // takes over, so the checkpoint is written through it too.
        let mut lock = PgConnection::connect_with(&self.pool.connect_options()).await?;
        loop {
            let acquired: bool =
                sqlx::query_scalar("select pg_try_advisory_lock(hashtext('tally.relay:' || $1))")
                    .bind(&self.config.name)
                    .fetch_one(&mut lock)
                    .await?;
            if acquired {
                break;
            }
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        // The checkpoint commits need not wait for their WAL flush: one lost in a crash only means
        // publishing its page again, and consumers skip duplicates.
        sqlx::query("set synchronous_commit to off")
            .execute(&mut lock)
            .await?;
        tracing::info!(relay = %self.config.name, "relay is active");
        let connection = connect(&self.config.amqp).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_events_exchange(&channel, &self.config.amqp.exchange).await?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("tally_events").await?;

        let store = EventStore::new(self.pool.clone());
        let checkpoint = self.checkpoint(&mut lock).await?;
        // Reading and publishing run up to `PAGES_IN_FLIGHT` pages ahead of confirming and
        // checkpointing so that the round trips overlap, and a checkpoint only names a page whose
        // confirms (and all before it) arrived, so a failure republishes: duplicates, never gaps.
        let (sent, in_flight) = mpsc::channel(PAGES_IN_FLIGHT);
        let reading =
            self.read_and_publish(&store, &channel, &mut listener, checkpoint, sent, shutdown);
        let confirming = self.confirm_and_checkpoint(&mut lock, in_flight);
        tokio::try_join!(reading, confirming)?;
        let _ = connection.close(200, "shutting down").await;
        Ok(())
    }

    /// Reads the log from `checkpoint` and publishes each page, handing its pending confirms to
    /// [`Self::confirm_and_checkpoint`]. Stops at `shutdown`; the pages already handed over are still
    /// confirmed and checkpointed.
    async fn read_and_publish(
        &self,
        store: &EventStore,
        channel: &Channel,
        listener: &mut PgListener,
        mut checkpoint: i64,
        sent: mpsc::Sender<PublishedPage>,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), RelayError> {
        loop {
            // Under a steady load the log is never empty, so shutdown is looked at before every page too.
            if shutdown.as_mut().now_or_never().is_some() {
                return Ok(());
            }
            let started = Instant::now();
            let events = store
                .read_all_publishable(checkpoint, self.config.page_size)
                .await?;
            let Some(last) = events.last() else {
                // Either a notification or the idle poll wakes us; a notification error ends the session.
                tokio::select! {
                    n = listener.recv() => { n?; }
                    _ = tokio::time::sleep(self.config.idle_poll) => {}
                    _ = &mut shutdown => return Ok(()),
                }
                continue;
            };
            let (position, recorded_at, events_count) =
                (last.position, last.recorded_at, events.len());
            let batches = runs(events, self.config.max_events_per_message)?;
            let read_ms = started.elapsed().as_secs_f64() * 1e3;
            let confirms = publish(channel, &self.config.amqp.exchange, &batches).await?;
            let page = PublishedPage {
                started,
                read_ms,
                position,
                recorded_at,
                events: events_count,
                messages: batches.len(),
                confirms,
            };
            if sent.send(page).await.is_err() {
                // The confirming side has stopped: its error ends the session.
                return Ok(());
            }
            checkpoint = position;
        }
    }

    /// Waits for each page's confirms, in publish order, then checkpoints it through the connection that
    /// holds the advisory lock.
    async fn confirm_and_checkpoint(
        &self,
        lock: &mut PgConnection,
        mut in_flight: mpsc::Receiver<PublishedPage>,
    ) -> Result<(), RelayError> {
        while let Some(page) = in_flight.recv().await {
            for confirm in page.confirms {
                match confirm.await? {
                    Confirmation::Ack(_) => {}
                    Confirmation::Nack(_) | Confirmation::NotRequested => {
                        return Err(RelayError::Nacked);
                    }
                }
            }
            let published_ms = page.started.elapsed().as_secs_f64() * 1e3;
            sqlx::query(
                "insert into relay_checkpoints (relay, position) values ($1, $2) \
                 on conflict (relay) do update set position = excluded.position, updated_at = now()",
            )
            .bind(&self.config.name)
            .bind(page.position)
            .execute(&mut *lock)
            .await?;
            metrics::counter!("tally_relay_published_events_total").increment(page.events as u64);
            metrics::counter!("tally_relay_messages_total").increment(page.messages as u64);
            let lag = (chrono::Utc::now() - page.recorded_at)
                .num_milliseconds()
                .max(0) as f64
                / 1000.0;
            metrics::gauge!("tally_relay_lag_seconds").set(lag);
            tracing::debug!(
                events = page.events,
                messages = page.messages,
                read_ms = page.read_ms,
                published_ms,
                checkpointed_ms = page.started.elapsed().as_secs_f64() * 1e3,
                lag_ms = lag * 1e3,
                "page relayed"
            );
        }
        Ok(())
    }

    async fn checkpoint(&self, conn: &mut PgConnection) -> Result<i64, RelayError> {
        let position: Option<i64> =
            sqlx::query_scalar("select position from relay_checkpoints where relay = $1")
                .bind(&self.config.name)
                .fetch_optional(conn)
                .await?;
        Ok(position.unwrap_or(0))
    }
}

/// Publishes every batch of a page and returns their pending confirms: awaited together, they are one
/// round trip per page, not per message.
async fn publish(
    channel: &Channel,
    exchange: &str,
    batches: &[EventBatch],
) -> Result<Vec<PublisherConfirm>, RelayError> {
    let mut confirms = Vec::with_capacity(batches.len());
    for batch in batches {
        let Some(first) = batch.events.first() else {
            continue;
        };
        let body = serde_json::to_vec(batch)?;
        let mut headers = FieldTable::default();
        if let Some(traceparent) = &first.metadata.traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(traceparent.clone().into()),
            );
        }
        headers.insert(
            "tally-ledger".into(),
            AMQPValue::LongString(batch.ledger.clone().into()),
        );
        headers.insert(
            "tally-first-version".into(),
            AMQPValue::LongLongInt(batch.first_version()),
        );
        headers.insert(
            "tally-last-version".into(),
            AMQPValue::LongLongInt(batch.last_version()),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(first.event_id.to_string().into())
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                exchange,
                &routing_key(&batch.ledger, &first.event_type),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await?;
        confirms.push(confirm);
    }
    Ok(confirms)
}

/// A page published and not yet confirmed.
struct PublishedPage {
    started: Instant,
    read_ms: f64,
    /// The last event's position: the checkpoint once the page is confirmed.
    position: i64,
    recorded_at: chrono::DateTime<chrono::Utc>,
    events: usize,
    messages: usize,
    confirms: Vec<PublisherConfirm>,
}

impl Sessions for Relay {
    type Error = RelayError;

    fn session<F: Future<Output = ()> + Send>(
        &self,
        shutdown: Pin<&mut F>,
    ) -> impl Future<Output = Result<(), RelayError>> + Send {
        self.serve_session(shutdown)
    }
}
