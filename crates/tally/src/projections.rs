//! `tally projections …` and the relay/projector roles: thin wrappers over the projector crate.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tally_eventstore::EventStore;
use tally_projector::rebuild;

/// Rebuilds the read models blue/green with a progress bar over the store's events.
pub async fn rebuild(pool: &PgPool) -> anyhow::Result<()> {
    let store = EventStore::new(pool.clone());
    let total: i64 = store.list_streams().await?.iter().map(|s| s.version).sum();
    let bar = ProgressBar::new(total.max(0) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let applied = rebuild::rebuild(pool, &store, &mut |n| bar.set_position(n))
        .await
        .context("rebuild the read models")?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt from {applied} events in {seconds:.1} s ({:.0} events/s) and swapped in",
        applied as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// One line per ledger: projected version, stored version, lag.
pub async fn status(pool: &PgPool) -> anyhow::Result<()> {
    println!(
        "{:<32} {:>12} {:>12} {:>8}",
        "ledger", "projected", "stored", "lag"
    );
    for ledger in rebuild::status(pool).await? {
        println!(
            "{:<32} {:>12} {:>12} {:>8}",
            ledger.ledger,
            ledger.projected,
            ledger.stored,
            ledger.stored - ledger.projected
        );
    }
    Ok(())
}

/// Compares the live read models with a fresh projection of the store; false when they differ.
pub async fn verify(pool: &PgPool) -> anyhow::Result<bool> {
    let store = EventStore::new(pool.clone());
    let differences = rebuild::differences(pool, &store).await?;
    if differences.is_empty() {
        println!("read models equal a fresh projection of the event store");
        return Ok(true);
    }
    for (table, rows) in &differences {
        println!("{table}: {rows} rows differ");
    }
    Ok(false)
}
