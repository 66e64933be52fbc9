//! The outbox relay: publishes every committed event to RabbitMQ, in stream order, with publisher
//! confirms, and checkpoints in PostgreSQL only what the broker confirmed. One relay is active at a time
//! (a PostgreSQL advisory lock); others wait as standbys.

use crate::amqp::{AmqpConfig, connect, declare_events_exchange};
use crate::backoff::Backoff;
use crate::message::{EventBatch, routing_key, runs};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener, PgPool};
use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;
use tally_eventstore::{EventStore, StoreError};

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
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            match self.session(shutdown.as_mut()).await {
                Ok(()) => return,
                Err(error) => {
                    let backoff_ms = backoff.next_delay().as_millis() as u64;
                    tracing::warn!(%error, backoff_ms, "relay session ended; reconnecting");
                    metrics::counter!("tally_relay_reconnects_total").increment(1);
                }
            }
            if !backoff.sleep(shutdown.as_mut()).await {
                return;
            }
        }
    }

    /// One session: wait for the lock, connect, publish until something fails (an error) or `shutdown`
    /// completes (`Ok`, after the page in flight is confirmed and checkpointed).
    async fn session(
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
        // publishing its page again, and consumers skip duplicates. It was a third of a round's time.
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
        let mut checkpoint = self.checkpoint(&mut lock).await?;
        loop {
            let started = std::time::Instant::now();
            let events = store.read_all(checkpoint, self.config.page_size).await?;
            let Some(last) = events.last() else {
                // Either a notification or the idle poll wakes us; a notification error ends the session.
                tokio::select! {
                    n = listener.recv() => { n?; }
                    _ = tokio::time::sleep(self.config.idle_poll) => {}
                    _ = &mut shutdown => {
                        let _ = connection.close(200, "shutting down").await;
                        return Ok(());
                    }
                }
                continue;
            };
            let (position, recorded_at, count) = (last.position, last.recorded_at, events.len());
            let batches = runs(events, self.config.max_events_per_message);
            let read_ms = started.elapsed().as_secs_f64() * 1e3;
            publish(&channel, &self.config.amqp.exchange, &batches).await?;
            let published_ms = started.elapsed().as_secs_f64() * 1e3;
            sqlx::query(
                "insert into relay_checkpoints (relay, position) values ($1, $2) \
                 on conflict (relay) do update set position = excluded.position, updated_at = now()",
            )
            .bind(&self.config.name)
            .bind(position)
            .execute(&mut lock)
            .await?;
            checkpoint = position;
            metrics::counter!("tally_relay_published_events_total").increment(count as u64);
            metrics::counter!("tally_relay_messages_total").increment(batches.len() as u64);
            let lag = (chrono::Utc::now() - recorded_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!("tally_relay_lag_seconds").set(lag);
            tracing::debug!(
                events = count,
                messages = batches.len(),
                read_ms,
                published_ms,
                checkpointed_ms = started.elapsed().as_secs_f64() * 1e3,
                lag_ms = lag * 1e3,
                "page relayed"
            );
        }
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

/// Publishes every batch, then waits for all confirms: one round trip per page, not per message.
async fn publish(
    channel: &Channel,
    exchange: &str,
    batches: &[EventBatch],
) -> Result<(), RelayError> {
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
    for confirm in confirms {
        match confirm.await? {
            Confirmation::Ack(_) => {}
            Confirmation::Nack(_) | Confirmation::NotRequested => return Err(RelayError::Nacked),
        }
    }
    Ok(())
}
