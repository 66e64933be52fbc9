//! Exponential back-off between reconnects to PostgreSQL or RabbitMQ, cut short by shutdown.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at 100 ms: a restarted broker usually answers again within a second.
    pub fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(100),
            max,
        }
    }

    pub fn next_delay(&self) -> Duration {
        self.next
    }

    /// Sleeps the current delay, then doubles it up to the maximum. `false` when `shutdown` came first.
    pub async fn sleep(&mut self, shutdown: Pin<&mut impl Future<Output = ()>>) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            _ = shutdown => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
