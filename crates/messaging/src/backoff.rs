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

/// A long-running role that works in sessions: one connects, works until something fails (`Err`) or
/// `shutdown` completes (`Ok`), and is followed by another after a failure ([`Reconnect::run`]).
pub trait Sessions {
    type Error: std::fmt::Display;

    fn session<F: Future<Output = ()> + Send>(
        &self,
        shutdown: Pin<&mut F>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// What a long-running role does between its sessions: log why the last one ended, count it, and wait
/// the back-off before the next, so that the relay and the projector reconnect alike.
pub struct Reconnect {
    backoff: Backoff,
    role: &'static str,
    counter: &'static str,
}

impl Reconnect {
    /// `role` names the sessions in the log; `counter` is the metric that counts reconnects.
    pub fn new(role: &'static str, counter: &'static str, max: Duration) -> Self {
        Self {
            backoff: Backoff::new(max),
            role,
            counter,
        }
    }

    /// Runs `role`'s sessions until one returns `Ok` (it saw `shutdown`) or `shutdown` comes during a
    /// back-off, reconnecting after every failed session: the loop every long-running role shares.
    pub async fn run<F>(mut self, role: &impl Sessions, shutdown: F)
    where
        F: Future<Output = ()> + Send,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        while let Err(error) = role.session(shutdown.as_mut()).await {
            if !self.after(error, shutdown.as_mut()).await {
                return;
            }
        }
    }

    /// After a session ended with `error`: logs and counts it, then sleeps the back-off. `false` when
    /// `shutdown` came first.
    pub async fn after(
        &mut self,
        error: impl std::fmt::Display,
        shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let backoff_ms = self.backoff.next_delay().as_millis() as u64;
        let role = self.role;
        tracing::warn!(%error, backoff_ms, "{role} session ended; reconnecting");
        metrics::counter!(self.counter).increment(1);
        drop(error);
        self.backoff.sleep(shutdown).await
    }
}
