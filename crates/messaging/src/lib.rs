//! RabbitMQ plumbing shared by the relay, the projector and the query API's cache invalidation:
//! connecting, the `tally.events` topic exchange, the message format, and the outbox relay.

mod amqp;
mod backoff;
mod message;
mod relay;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use amqp::{AmqpConfig, Session, connect, declare_events_exchange};
pub use backoff::{Backoff, Reconnect, Sessions};
pub use message::{EventBatch, PublishedEvent, ReceivedBatch, ReceivedEvent, routing_key};
pub use relay::{Relay, RelayConfig, RelayError};
