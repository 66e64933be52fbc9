//! Connecting to RabbitMQ on the tokio runtime and declaring the events exchange.

use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

/// Where the broker is and what the exchange is called. Tests use their own exchange names so they can
/// run side by side on one broker.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (`%2f` is the default vhost).
    pub uri: String,
    pub exchange: String,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            uri: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: "tally.events".into(),
        }
    }
}

pub async fn connect(config: &AmqpConfig) -> Result<Session, lapin::Error> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name("tally".into());
    Connection::connect(&config.uri, properties)
        .await
        .map(|c| Session(Some(c)))
}

/// A broker connection that is closed when it is dropped. lapin keeps a connection, and the consumers on
/// it, open until it is closed explicitly; a session that ended with an error, or a task that was
/// cancelled, would leave its consumer registered, and on a single-active-consumer queue the active one,
/// holding its unacknowledged messages while the consumer that replaced it waits.
pub struct Session(Option<Connection>);

impl std::ops::Deref for Session {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Only `drop` takes the connection out.
        self.0
            .as_ref()
            .expect("a session holds its connection until dropped")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(connection) = self.0.take() else {
            return;
        };
        if !connection.status().connected() {
            return;
        }
        // Closing is asynchronous; without a runtime (the process is ending) the socket dies with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = connection.close(200, "session ended").await;
            });
        }
    }
}

/// The durable topic exchange all events go through; declaring it is idempotent.
pub async fn declare_events_exchange(
    channel: &Channel,
    exchange: &str,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}
