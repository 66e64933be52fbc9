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

/// The OpenAPI document of the public origin: the command and the query API together.
pub fn public_document() -> utoipa::openapi::OpenApi {
    let mut document = tally_command_api::openapi::document();
    document.merge(tally_query_api::openapi::document());
    document.info.title = "Tally API".into();
    document.info.description = Some(
        "Tally, an event-sourced double-entry ledger: the command API (writes, answered with the \
         consistency token `ledger`/`version`) and the query API (cached reads; `Tally-Min-Version` \
         waits for a token) on one origin. JSON in and out; amounts are decimal strings of minor units; \
         errors are `application/problem+json` (RFC 9457) with a stable `type`."
            .into(),
    );
    document
}

/// `tally command-api`: the write side over HTTPS.
pub async fn command_api(pool: PgPool) -> anyhow::Result<()> {
    let config = tally_command_api::Config::from_env().context("read the HTTP configuration")?;
    let app = tally_command_api::Application::build(config, pool)
        .await
        .context("start the command API")?;
    tracing::info!(url = %app.url(), "command api listening");
    app.run(tally_server::shutdown_signal())
        .await
        .context("serve the command API")
}

/// `tally query-api`: the read side over HTTPS.
pub async fn query_api(pool: PgPool) -> anyhow::Result<()> {
    let http = tally_server::HttpConfig::from_env().context("read the HTTP configuration")?;
    let config =
        tally_query_api::QueryConfig::from_env(amqp_config()).context("read the query settings")?;
    let app = tally_query_api::Application::build(http, config, pool)
        .await
        .context("start the query API")?;
    tracing::info!(url = %app.url(), "query api listening");
    app.run(tally_server::shutdown_signal())
        .await
        .context("serve the query API")
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

/// The projector's settings: `TALLY_PROJECTION_QUEUE` (default `tally.projection.ledger`) names its
/// queue, so separate installations can share one broker.
fn projector_config() -> ProjectorConfig {
    let defaults = ProjectorConfig::default();
    ProjectorConfig {
        amqp: amqp_config(),
        queue: std::env::var("TALLY_PROJECTION_QUEUE")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or(defaults.queue.clone()),
        ..defaults
    }
}

/// `tally projector`: keeps the read models (one active consumer per projection queue).
pub async fn projector(pool: PgPool) -> anyhow::Result<()> {
    let config = projector_config();
    Projector::new(pool, config)
        .run(tally_server::shutdown_signal())
        .await;
    Ok(())
}

/// `tally all`: every role in one process, stopped together.
pub async fn all(pool: PgPool) -> anyhow::Result<()> {
    let shutdown = shutdown_fanout();
    let relay = Relay::new(
        pool.clone(),
        RelayConfig {
            amqp: amqp_config(),
            ..RelayConfig::default()
        },
    );
    let projector = Projector::new(pool.clone(), projector_config());
    let relay = tokio::spawn(relay.run(shutdown()));
    let projector = tokio::spawn(projector.run(shutdown()));
    let queries = tally_query_api::QueryService::start(
        pool.clone(),
        tally_query_api::QueryConfig::from_env(amqp_config()).context("read the query settings")?,
    );
    let config = tally_command_api::Config::from_env().context("read the HTTP configuration")?;
    let app = tally_command_api::Application::build(config, pool)
        .await
        .context("start the API")?;
    tracing::info!(url = %app.url(), "command and query api listening");
    let closing = queries.closing();
    // Live streams never end by themselves: they close at the signal, before the server drains.
    let stop = shutdown();
    let served = app
        .run_with(queries.routes(), &public_document(), async move {
            stop.await;
            closing();
        })
        .await
        .context("serve the API");
    queries.stop().await;
    // The API has answered everything it accepted; the relay and projector stop at the same signal.
    let _ = relay.await;
    let _ = projector.await;
    served
}

#[cfg(test)]
mod tests {
    /// The document is the contract the web UI's client is generated from: any change to it shows in
    /// review as a change of this snapshot (`cargo insta review` accepts an intended one).
    #[test]
    fn the_openapi_document_is_the_committed_contract() {
        let document =
            serde_json::to_value(super::public_document()).expect("the document serialises");
        insta::assert_json_snapshot!("openapi", document);
    }
}
