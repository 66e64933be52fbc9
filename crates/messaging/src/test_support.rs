//! What tests against the real broker share (feature `test-support`): each test declares exchanges and
//! queues of its own, and deletes them here when it ends.

use crate::amqp::{AmqpConfig, connect};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};

/// Deletes a test's `queues` and `exchanges` on the broker of `amqp`. Best effort: a test that failed
/// midway may never have declared them, and the broker may be down.
pub async fn delete_broker_objects(amqp: &AmqpConfig, queues: &[&str], exchanges: &[&str]) {
    let Ok(session) = connect(amqp).await else {
        return;
    };
    if let Ok(channel) = session.create_channel().await {
        for queue in queues {
            let _ = channel
                .queue_delete(queue, QueueDeleteOptions::default())
                .await;
        }
        for exchange in exchanges {
            let _ = channel
                .exchange_delete(exchange, ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = session.close(0, "test done").await;
}
