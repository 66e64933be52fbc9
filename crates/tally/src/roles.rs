//! The serving roles: each reads its configuration from the environment and runs until Ctrl-C or SIGTERM.

use anyhow::Context;
use sqlx::PgPool;

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

/// `tally all`: every role in one process.
pub async fn all(pool: PgPool) -> anyhow::Result<()> {
    // The relay and the projector join here once they exist: spawn them on clones of `pool` with the
    // same shutdown signal, and wait for all roles to stop.
    command_api(pool).await
}
