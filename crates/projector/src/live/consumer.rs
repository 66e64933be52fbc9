//! The projector process: consumes the projection's quorum queue (single active consumer, so several
//! processes give fail-over without double processing), acks only after the read models committed, and
//! sweeps the store periodically so a lost message never leaves a ledger behind for long.

use super::project::{StoredEvent, catch_up, catch_up_all, project_batches};
use crate::error::ProjectionError;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use sqlx::PgPool;
use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;
use tally_eventstore::EventStore;
use tally_messaging::{AmqpConfig, Backoff, ReceivedBatch, connect, declare_events_exchange};

/// Messages applied in one transaction at most: bounds the transaction's size and the work redone if
/// it fails. The prefetch bounds it too.
const MAX_GROUP_MESSAGES: usize = 128;
/// Events a group stops growing at: a transaction stays well under a second even on a busy machine.
const MAX_GROUP_EVENTS: usize = 20_000;

/// Decodes a message into `batches`; returns its number of events.
fn take(data: &[u8], batches: &mut Vec<(String, Vec<StoredEvent>)>) -> usize {
    match serde_json::from_slice::<ReceivedBatch>(data) {
        Ok(batch) => {
            let events = batch.events.len();
            batches.push((
                batch.ledger,
                batch.events.into_iter().map(StoredEvent::from).collect(),
            ));
            events
        }
        // The store is the truth: a message we cannot read is dropped and the sweep (or the next
        // message's gap fill) brings its events in from the store.
        Err(error) => {
            tracing::error!(%error, "undecodable message dropped");
            metrics::counter!("tally_projection_bad_messages_total").increment(1);
            0
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub amqp: AmqpConfig,
    /// The projection's own queue; tests use unique names.
    pub queue: String,
    /// Unacknowledged messages in flight: enough to keep the database busy, bounded so a crash
    /// redelivers little.
    pub prefetch: u16,
    /// How often the store is compared with the checkpoints, to heal lost or unroutable messages.
    pub sweep_interval: Duration,
    pub max_backoff: Duration,
    /// The schema holding the read models.
    pub schema: String,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            amqp: AmqpConfig::default(),
            queue: "tally.projection.ledger".into(),
            prefetch: 128,
            sweep_interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(10),
            schema: "read".into(),
        }
    }
}

pub struct Projector {
    pool: PgPool,
    store: EventStore,
    config: ProjectorConfig,
}

impl Projector {
    pub fn new(pool: PgPool, config: ProjectorConfig) -> Self {
        Self {
            store: EventStore::new(pool.clone()),
            pool,
            config,
        }
    }

    /// Runs until `shutdown`, reconnecting with back-off after any failure. Unacknowledged messages
    /// go back to the queue when the channel closes and are skipped or applied on redelivery.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            match self.session(shutdown.as_mut()).await {
                Ok(()) => return,
                Err(error) => {
                    let backoff_ms = backoff.next_delay().as_millis() as u64;
                    tracing::warn!(%error, backoff_ms, "projector session ended; reconnecting");
                    metrics::counter!("tally_projector_reconnects_total").increment(1);
                }
            }
            if !backoff.sleep(shutdown.as_mut()).await {
                return;
            }
        }
    }

    /// Consumes until an error, or until `shutdown` completes (`Ok`, after the message in hand is
    /// committed and acked).
    async fn session(
        &self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), ProjectionError> {
        let schema = self.config.schema.as_str();
        let connection = connect(&self.config.amqp).await?;
        let channel = connection.create_channel().await?;
        declare_events_exchange(&channel, &self.config.amqp.exchange).await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        channel
            .queue_declare(
                &self.config.queue,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                &self.config.queue,
                &self.config.amqp.exchange,
                "#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // Caught up only once the queue is bound: an event committed before the binding is in the store
        // for this to read, one committed after it is in the queue. The other way round, the events
        // published between the catch-up and the binding were routed nowhere, and missing until the
        // ledger's next message or the sweep.
        catch_up_all(&self.pool, &self.store, schema, &mut |_| {}).await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                &self.config.queue,
                "tally-projector",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        // Each ledger's stored version as the previous sweep saw it. Under load every ledger is a little
        // behind at any instant, with its events on their way through the queue; only a ledger that has
        // not reached what was stored a whole interval ago has lost a message, and only that one is
        // read from the store, so the sweep never stalls the consumer chasing events already in flight.
        let mut stored_before: std::collections::HashMap<String, i64> = Default::default();
        // Runs beside the consumer, never in its way: ANALYZE of a large table takes a while.
        let mut analysing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                delivery = deliveries.next() => {
                    let Some(delivery) = delivery else {
                        return Err(ProjectionError::Broker(lapin::Error::InvalidChannelState(lapin::ChannelState::Closed)));
                    };
                    // Every message already waiting joins this one in a single transaction: one commit
                    // (and fsync) for all, which is what lets the projector keep up with the writer.
                    let mut last = delivery?;
                    let mut batches = Vec::new();
                    let mut events = take(&last.data, &mut batches);
                    while batches.len() < MAX_GROUP_MESSAGES && events < MAX_GROUP_EVENTS {
                        match deliveries.next().now_or_never() {
                            Some(Some(delivery)) => {
                                last = delivery?;
                                events += take(&last.data, &mut batches);
                            }
                            _ => break,
                        }
                    }
                    let started = std::time::Instant::now();
                    let messages = batches.len();
                    let applied = project_batches(&self.pool, &self.store, schema, batches).await?;
                    tracing::debug!(messages, events, applied, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "group projected");
                    // Acks this delivery and every earlier one of the group, all committed above.
                    last.ack(BasicAckOptions { multiple: true }).await?;
                }
                _ = &mut shutdown => {
                    let _ = connection.close(200, "shutting down").await;
                    return Ok(());
                }
                _ = sweep.tick() => {
                    // One query finds the ledgers behind; only those are read from the store.
                    let rows = crate::rebuild::status(&self.pool).await?;
                    let behind: i64 = rows.iter().map(|(_, projected, stored)| stored - projected).sum();
                    metrics::gauge!("tally_projection_lag_events").set(behind as f64);
                    let mut stored_now = std::collections::HashMap::with_capacity(rows.len());
                    for (ledger, projected, stored) in rows {
                        let overdue = stored_before.get(&ledger).is_some_and(|&then| projected < then);
                        if overdue {
                            catch_up(&self.pool, &self.store, schema, &ledger).await?;
                        }
                        stored_now.insert(ledger, stored);
                    }
                    stored_before = stored_now;
                    if analysing.as_ref().is_none_or(|task| task.is_finished()) {
                        let (pool, schema) = (self.pool.clone(), schema.to_owned());
                        analysing = Some(tokio::spawn(async move {
                            match crate::statistics::analyze_new_tables(&pool, &schema).await {
                                Ok(tables) if !tables.is_empty() => {
                                    tracing::info!(?tables, "analysed read tables that had no statistics");
                                }
                                Ok(_) => {}
                                Err(error) => tracing::warn!(%error, "could not analyse the read tables"),
                            }
                        }));
                    }
                }
            }
        }
    }
}
