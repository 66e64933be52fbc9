//! Cache invalidation from the event stream: each instance binds its own exclusive, auto-delete queue to
//! `tally.events` and notes, per ledger, the newest version announced. Messages are hints, consumed
//! without acknowledgement: the read model's checkpoints remain the truth ([`crate::versions`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tally_messaging::{
    AmqpConfig, ReceivedBatch, Reconnect, Sessions, connect, declare_events_exchange,
};

use crate::cache::AnswerCache;
use crate::versions::Versions;

pub struct Invalidation {
    pub amqp: AmqpConfig,
    pub versions: Versions,
    pub cache: AnswerCache,
    pub max_backoff: Duration,
}

impl Invalidation {
    /// Consumes until `shutdown`, reconnecting with back-off; the cache is bypassed while disconnected.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let reconnect = Reconnect::new(
            "cache invalidation",
            "tally_query_invalidation_reconnects_total",
            self.max_backoff,
        );
        reconnect.run(&self, shutdown).await;
    }

    async fn serve_session(
        &self,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), lapin::Error> {
        let connection = connect(&self.amqp).await?;
        let channel = connection.create_channel().await?;
        declare_events_exchange(&channel, &self.amqp.exchange).await?;
        let queue = channel
            .queue_declare(
                "",
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.name().as_str(),
                &self.amqp.exchange,
                "#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut deliveries = channel
            .basic_consume(
                queue.name().as_str(),
                "tally-query-cache",
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        // Only now can no announcement be missed: whatever was cached before may be stale.
        self.cache.set_live(true);
        tracing::info!(queue = %queue.name(), "cache invalidation stream consuming");
        loop {
            tokio::select! {
                delivery = deliveries.next() => {
                    let Some(delivery) = delivery else {
                        return Err(lapin::Error::InvalidChannelState(lapin::ChannelState::Closed));
                    };
                    let delivery = delivery?;
                    match serde_json::from_slice::<ReceivedBatch>(&delivery.data) {
                        Ok(batch) => self.versions.seen(&batch.ledger, batch.last_version()),
                        Err(error) => tracing::warn!(%error, "undecodable event message ignored"),
                    }
                }
                _ = &mut shutdown => {
                    let _ = connection.close(200, "shutting down").await;
                    return Ok(());
                }
            }
        }
    }
}

impl Sessions for Invalidation {
    type Error = lapin::Error;

    async fn session<F: Future<Output = ()> + Send>(
        &self,
        shutdown: Pin<&mut F>,
    ) -> Result<(), lapin::Error> {
        let ended = self.serve_session(shutdown).await;
        // Nothing is served from the cache until a new session is consuming again.
        self.cache.set_live(false);
        ended
    }
}
