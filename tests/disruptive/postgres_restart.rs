//! A PostgreSQL restart in the middle of a stream of commands: every acknowledged transfer survives,
//! and retries of the unacknowledged ones (same transfer id) apply none twice.

use sqlx::PgPool;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use tally_domain::*;
use tally_eventstore::{EventMetadata, EventStore};
use tally_writer::{Submission, WriteError, WriterConfig, Writers};
use uuid::Uuid;

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("one cluster version");
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "--mode",
            "immediate",
        ])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "restart failed");
}

fn sub(kind: CommandKind) -> Submission {
    Submission {
        kind,
        metadata: EventMetadata {
            actor: "tester".into(),
            client: "disruptive".into(),
            correlation_id: None,
            causation_id: None,
            traceparent: None,
        },
    }
}

fn transfer(n: u128) -> CommandKind {
    let usd = CurrencyCode::parse("USD").expect("valid");
    let leg = |account: &str, side| LegSpec {
        account: AccountCode::parse(account).expect("valid"),
        side,
        amount: Amount::new(1).expect("positive"),
        currency: usd.clone(),
    };
    CommandKind::RecordTransfer(TransferSpec {
        id: TransferId(Uuid::from_u128(n)),
        legs: vec![
            leg("equity:capital", Side::Credit),
            leg("assets:cash", Side::Debit),
        ],
        effective_at: None,
        description: String::new(),
        metadata: Metadata::default(),
        pending: None,
    })
}

#[ignore = "restarts the shared PostgreSQL; run serially by scripts/test"]
#[sqlx::test(migrator = "tally_eventstore::MIGRATOR")]
async fn a_postgres_restart_loses_no_acknowledged_transfer_and_doubles_none(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let writers = Writers::new(store.clone(), WriterConfig::default());
    let ledger = LedgerId::parse("main").expect("valid");
    let usd = Currency::new(CurrencyCode::parse("USD").expect("valid"), 2).expect("valid");
    for kind in [
        CommandKind::CreateLedger {
            name: "main".into(),
        },
        CommandKind::OpenAccount {
            code: AccountCode::parse("equity:capital").expect("valid"),
            account_type: AccountType::Equity,
            currency: usd.clone(),
            limits: Limits::default(),
            metadata: Metadata::parse(BTreeMap::new()).expect("empty"),
        },
        CommandKind::OpenAccount {
            code: AccountCode::parse("assets:cash").expect("valid"),
            account_type: AccountType::Asset,
            currency: usd,
            limits: Limits::default(),
            metadata: Metadata::default(),
        },
    ] {
        assert!(matches!(
            writers.submit(&ledger, sub(kind)).await,
            Ok(Ok(_))
        ));
    }

    let restarter = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        tokio::task::spawn_blocking(restart_postgres)
            .await
            .expect("restart task");
    });
    // The stream runs until the restart is over and then some more, however fast this machine commits:
    // a stream that finished before the restart began would prove nothing.
    let mut acknowledged = 0u128;
    let mut acknowledged_before_restart_ended = None;
    let mut retries = 0u32;
    let mut n = 0u128;
    loop {
        if acknowledged_before_restart_ended.is_none() && restarter.is_finished() {
            acknowledged_before_restart_ended = Some(acknowledged);
        }
        if let Some(before) = acknowledged_before_restart_ended
            && acknowledged >= before + 100
            && acknowledged >= 400
        {
            break;
        }
        // A client that did not get an answer retries with the same id until it does.
        loop {
            match writers.submit(&ledger, sub(transfer(n))).await {
                Ok(Ok(_)) => {
                    acknowledged += 1;
                    break;
                }
                Ok(Err(refused)) => panic!("transfer {n} refused: {refused:?}"),
                Err(WriteError::Unavailable(_) | WriteError::Store(_)) => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        n += 1;
    }
    restarter.await.expect("restarter");
    let before = acknowledged_before_restart_ended.expect("the restart ended during the stream");
    assert!(
        before > 0,
        "the stream should have started before the restart"
    );
    eprintln!("{acknowledged} acknowledged, {before} before the restart ended, {retries} retries");
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from events where stream_id = 'main' and transfer_id is not null",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(
        stored as u128, acknowledged,
        "each transfer stored exactly once"
    );
    assert!(
        store
            .verify_stream("main")
            .await
            .expect("verify")
            .is_intact()
    );
    writers.shutdown().await;
}
