//! The projector process: consumes the projection's quorum queue (single active consumer, so several
//! processes give fail-over without double processing), acks only after the read models committed, and
//! sweeps the store periodically so a lost message never leaves a ledger behind for long.

use super::project::{catch_up, catch_up_all, project_batches};
use crate::checkpoints::{LedgerStatus, ledger_status};
use crate::error::ProjectionError;
use crate::statistics::analyze_new_tables;
use crate::stored::StoredEvent;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tally_eventstore::EventStore;
use tally_messaging::{
    AmqpConfig, ReceivedBatch, Reconnect, Sessions, connect, declare_events_exchange,
};
use tokio::task::JoinHandle;

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
        // The store is the truth: an unreadable message is dropped, and the sweep (or the next
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
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let reconnect = Reconnect::new(
            "projector",
            "tally_projector_reconnects_total",
            self.config.max_backoff,
        );
        reconnect.run(&self, shutdown).await;
    }

    /// Consumes until an error, or until `shutdown` completes (`Ok`, after the group in hand is
    /// committed and acked).
    async fn serve_session(
        &self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), ProjectionError> {
        let connection = connect(&self.config.amqp).await?;
        let channel = connection.create_channel().await?;
        self.declare_queue(&channel).await?;
        // Caught up only once the queue is bound, so that every event is in the store when this reads
        // it or in the queue, never published in between and routed nowhere.
        catch_up_all(&self.pool, &self.store, &self.config.schema, &mut |_| {}).await?;
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
        let mut sweep = Sweep::new(self);
        let mut sweep_every = tokio::time::interval(self.config.sweep_interval);
        loop {
            tokio::select! {
                delivery = deliveries.next() => self.project_group(&mut deliveries, delivery).await?,
                _ = &mut shutdown => {
                    let _ = connection.close(200, "shutting down").await;
                    return Ok(());
                }
                _ = sweep_every.tick() => sweep.run().await?,
            }
        }
    }

    /// The projection's quorum queue, single active consumer, bound to every event.
    async fn declare_queue(&self, channel: &Channel) -> Result<(), ProjectionError> {
        declare_events_exchange(channel, &self.config.amqp.exchange).await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(&self.config.queue, durable, arguments)
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
        Ok(())
    }

    /// Projects `first` and every message already waiting behind it in a single transaction (one
    /// commit and fsync for all, which is what lets the projector keep up with the writer), then acks
    /// them all.
    async fn project_group(
        &self,
        deliveries: &mut Consumer,
        first: Option<Result<Delivery, lapin::Error>>,
    ) -> Result<(), ProjectionError> {
        let Some(first) = first else {
            let closed = lapin::Error::InvalidChannelState(lapin::ChannelState::Closed);
            return Err(ProjectionError::Broker(closed));
        };
        let mut last = first?;
        let mut batches = Vec::new();
        let mut events = take(&last.data, &mut batches);
        while batches.len() < MAX_GROUP_MESSAGES && events < MAX_GROUP_EVENTS {
            let Some(Some(delivery)) = deliveries.next().now_or_never() else {
                break;
            };
            last = delivery?;
            events += take(&last.data, &mut batches);
        }
        let started = Instant::now();
        let messages = batches.len();
        let schema = &self.config.schema;
        let applied = project_batches(&self.pool, &self.store, schema, batches).await?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(messages, events, applied, elapsed_ms, "group projected");
        // Acks this delivery and every earlier one of the group, all committed above.
        last.ack(BasicAckOptions { multiple: true }).await?;
        Ok(())
    }
}

/// The periodic comparison of the store with the checkpoints, which heals lost or unroutable messages.
struct Sweep<'a> {
    projector: &'a Projector,
    /// Each ledger's stored version as the previous sweep saw it. Under load every ledger is a little
    /// behind at any instant, with its events on their way through the queue; only a ledger that has
    /// not reached what was stored a whole interval ago has lost a message, and only that one is read
    /// from the store, so the sweep never stalls the consumer chasing events already in flight.
    stored_before: HashMap<String, i64>,
    /// Runs beside the consumer, never in its way: ANALYZE of a large table takes a while.
    analysing: Option<JoinHandle<()>>,
}

impl<'a> Sweep<'a> {
    fn new(projector: &'a Projector) -> Self {
        Self {
            projector,
            stored_before: HashMap::new(),
            analysing: None,
        }
    }

    /// One query finds the ledgers behind; only those overdue are read from the store.
    async fn run(&mut self) -> Result<(), ProjectionError> {
        let Projector {
            pool,
            store,
            config,
        } = self.projector;
        let ledgers = ledger_status(pool, store).await?;
        let behind: i64 = ledgers.iter().map(|l| l.stored - l.projected).sum();
        metrics::gauge!("tally_projection_lag_events").set(behind as f64);
        let mut stored_now = HashMap::with_capacity(ledgers.len());
        for LedgerStatus {
            ledger,
            projected,
            stored,
        } in ledgers
        {
            let overdue = self
                .stored_before
                .get(&ledger)
                .is_some_and(|&then| projected < then);
            if overdue {
                catch_up(pool, store, &config.schema, &ledger).await?;
            }
            stored_now.insert(ledger, stored);
        }
        self.stored_before = stored_now;
        self.analyse();
        Ok(())
    }

    /// Starts analysing the read tables that lack statistics, unless the last analysis still runs.
    fn analyse(&mut self) {
        if self
            .analysing
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        let pool = self.projector.pool.clone();
        let schema = self.projector.config.schema.clone();
        self.analysing = Some(tokio::spawn(async move {
            match analyze_new_tables(&pool, &schema).await {
                Ok(tables) if !tables.is_empty() => {
                    tracing::info!(?tables, "analysed read tables that had no statistics");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not analyse the read tables"),
            }
        }));
    }
}

impl Sessions for Projector {
    type Error = ProjectionError;

    fn session<F: Future<Output = ()> + Send>(
        &self,
        shutdown: Pin<&mut F>,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        self.serve_session(shutdown)
    }
}
