//! Connecting to PostgreSQL and applying migrations.

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// Connections per process: enough for the writers' appends and the readers, well below PostgreSQL's
/// default `max_connections` of 100 so several processes fit.
const MAX_CONNECTIONS: u32 = 20;
/// Waiting longer than this for a connection means the database is overloaded; fail the request instead.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .with_context(|| format!("connect to PostgreSQL at {}", redact(url)))
}

pub async fn connect_and_migrate(url: &str) -> anyhow::Result<PgPool> {
    if !sqlx::Postgres::database_exists(url)
        .await
        .with_context(|| format!("reach PostgreSQL at {}", redact(url)))?
    {
        sqlx::Postgres::create_database(url)
            .await
            .context("create the database")?;
    }
    let pool = connect(url).await?;
    tally_eventstore::MIGRATOR
        .run(&pool)
        .await
        .context("apply migrations")?;
    Ok(pool)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
