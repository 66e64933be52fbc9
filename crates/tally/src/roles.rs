//! The serving roles: each reads its configuration from the environment and runs until Ctrl-C or SIGTERM.

use anyhow::Context;
use sqlx::PgPool;
use std::future::Future;
use tally_messaging::{AmqpConfig, Relay, RelayConfig};
use tally_projector::{Projector, ProjectorConfig};
use tokio::sync::watch;

/// RabbitMQ settings: `TALLY_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`) and
/// `TALLY_EVENTS_EXCHANGE` (default `tally.events`).
fn amqp_config() -> AmqpConfig {
    let defaults = AmqpConfig::default();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    AmqpConfig {
        uri: var("TALLY_AMQP_URL").unwrap_or(defaults.uri),
        exchange: var("TALLY_EVENTS_EXCHANGE").unwrap_or(defaults.exchange),
    }
}

/// One Ctrl-C/SIGTERM fanned out to every role of the process.
fn shutdown_fanout() -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tally_server::shutdown_signal().await;
        let _ = tx.send(true);
    });
    move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
    }
}

async fn serve_commands(pool: PgPool, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = tally_command_api::Config::from_env().context("read the HTTP configuration")?;
    let app = tally_command_api::Application::build(config, pool)
        .await
        .context("start the command API")?;
    tracing::info!(url = %app.url(), "command api listening");
    app.run(shutdown).await.context("serve the command API")
}

/// `tally command-api`: the write side over HTTPS.
pub async fn command_api(pool: PgPool) -> anyhow::Result<()> {
    serve_commands(pool, tally_server::shutdown_signal()).await
}

/// `tally relay`: publishes committed events to RabbitMQ (one active per database; others stand by).
pub async fn relay(pool: PgPool) -> anyhow::Result<()> {
    let config = RelayConfig {
        amqp: amqp_config(),
        ..RelayConfig::default()
    };
    Relay::new(pool, config)
        .run(tally_server::shutdown_signal())
        .await;
    Ok(())
}

/// `tally projector`: keeps the read models (one active consumer per projection queue).
pub async fn projector(pool: PgPool) -> anyhow::Result<()> {
    let config = ProjectorConfig {
        amqp: amqp_config(),
        ..ProjectorConfig::default()
    };
    Projector::new(pool, config)
        .run(tally_server::shutdown_signal())
        .await;
    Ok(())
}

/// `tally all`: every role in one process, stopped together.
pub async fn all(pool: PgPool) -> anyhow::Result<()> {
    let shutdown = shutdown_fanout();
    let amqp = amqp_config();
    let relay = Relay::new(
        pool.clone(),
        RelayConfig {
            amqp: amqp.clone(),
            ..RelayConfig::default()
        },
    );
    let projector = Projector::new(
        pool.clone(),
        ProjectorConfig {
            amqp,
            ..ProjectorConfig::default()
        },
    );
    let relay = tokio::spawn(relay.run(shutdown()));
    let projector = tokio::spawn(projector.run(shutdown()));
    let served = serve_commands(pool, shutdown()).await;
    // The API has answered everything it accepted; the relay and projector stop at the same signal.
    let _ = relay.await;
    let _ = projector.await;
    served
}
