//! Operator tooling over the event store: listing and verifying ledgers' events.

use anyhow::Context;
use sqlx::PgPool;
use std::io::Write;
use tally_eventstore::{EventStore, VerifyReport};

pub async fn print_events(
    pool: &PgPool,
    ledger: &str,
    after: i64,
    limit: i64,
) -> anyhow::Result<()> {
    let store = EventStore::new(pool.clone());
    let events = store
        .read_stream(ledger, after, limit)
        .await
        .with_context(|| format!("read ledger {ledger}"))?;
    let mut out = std::io::stdout().lock();
    for event in events {
        serde_json::to_writer(&mut out, &event)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Prints one line per ledger; answers whether every one is intact.
pub async fn verify(pool: &PgPool, ledger: Option<&str>) -> anyhow::Result<bool> {
    let store = EventStore::new(pool.clone());
    let ledgers = match ledger {
        Some(l) => vec![l.to_owned()],
        None => store
            .list_streams()
            .await?
            .into_iter()
            .map(|s| s.stream_id)
            .collect(),
    };
    let mut all_intact = true;
    for ledger in ledgers {
        let report = store
            .verify_stream(&ledger)
            .await
            .with_context(|| format!("verify ledger {ledger}"))?;
        all_intact &= report.is_intact();
        match report {
            VerifyReport::Intact { version, head_hash } => {
                println!(
                    "{ledger}: intact through version {version}, head {}",
                    hex::encode(head_hash)
                )
            }
            VerifyReport::TamperedEvent { version } => {
                println!("{ledger}: TAMPERED at version {version}")
            }
            VerifyReport::MissingEvent { expected_version } => {
                println!("{ledger}: MISSING event at version {expected_version}")
            }
            VerifyReport::HeadMismatch {
                head_version,
                last_version,
            } => {
                println!("{ledger}: HEAD MISMATCH (head {head_version}, last event {last_version})")
            }
        }
    }
    Ok(all_intact)
}
