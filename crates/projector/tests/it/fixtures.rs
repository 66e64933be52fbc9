//! A ledger with traffic, broker names unique to the test, and waiting helpers.

use sqlx::PgPool;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tally_domain::*;
use tally_eventstore::{EventMetadata, EventStore};
use tally_messaging::test_support::delete_broker_objects;
use tally_messaging::{AmqpConfig, RelayConfig};
use tally_projector::ProjectorConfig;
use tally_writer::{Submission, WriterConfig, Writers};
use uuid::Uuid;

pub struct Names {
    pub exchange: String,
    pub queue: String,
}

impl Names {
    pub fn unique() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            exchange: format!("test.events.{id}"),
            queue: format!("test.projection.{id}"),
        }
    }

    pub fn relay(&self) -> RelayConfig {
        RelayConfig {
            amqp: AmqpConfig {
                exchange: self.exchange.clone(),
                ..AmqpConfig::default()
            },
            idle_poll: Duration::from_millis(20),
            ..RelayConfig::default()
        }
    }

    /// The sweep is slowed right down so that the tests see what the messages alone achieve.
    pub fn projector(&self) -> ProjectorConfig {
        ProjectorConfig {
            amqp: AmqpConfig {
                exchange: self.exchange.clone(),
                ..AmqpConfig::default()
            },
            queue: self.queue.clone(),
            sweep_interval: Duration::from_secs(3_600),
            ..ProjectorConfig::default()
        }
    }

    pub async fn delete(&self) {
        let (queues, exchanges) = ([self.queue.as_str()], [self.exchange.as_str()]);
        delete_broker_objects(&AmqpConfig::default(), &queues, &exchanges).await;
    }
}

fn meta() -> EventMetadata {
    EventMetadata {
        actor: "tester".into(),
        client: "projector-tests".into(),
        correlation_id: None,
        causation_id: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

fn code(s: &str) -> AccountCode {
    AccountCode::parse(s).expect("valid code")
}

fn usd() -> CurrencyCode {
    CurrencyCode::parse("USD").expect("valid")
}

fn leg(account: &str, side: Side, amount: i128) -> LegSpec {
    LegSpec {
        account: code(account),
        side,
        amount: Amount::new(amount).expect("positive"),
        currency: usd(),
    }
}

pub fn transfer(n: u128, from: &str, to: &str, amount: i128) -> CommandKind {
    CommandKind::RecordTransfer(TransferSpec {
        id: TransferId(Uuid::from_u128(n)),
        legs: vec![
            leg(from, Side::Credit, amount),
            leg(to, Side::Debit, amount),
        ],
        effective_at: None,
        description: format!("transfer {n}"),
        metadata: Metadata::default(),
        pending: None,
    })
}

/// A transfer effective `days` before now, i.e. before whatever was booked just now.
pub fn backdated(n: u128, from: &str, to: &str, amount: i128, days: i64) -> CommandKind {
    let mut kind = transfer(n, from, to, amount);
    if let CommandKind::RecordTransfer(spec) = &mut kind {
        spec.effective_at = Some(chrono::Utc::now() - chrono::Duration::days(days));
    }
    kind
}

/// Every event of `ledger` in the store, as the broker would carry them.
/// Text that the COPY formats must escape (see [`awkward`]).
pub const AWKWARD_DESCRIPTION: &str =
    "tab\there, line\nbreak, back\\slash \\N, \"quoted\", ünïcödé 🙂\r";
pub const AWKWARD_NOTE: &str = "a\tb\\c\nd \\N";

/// A backdated transfer described with [`AWKWARD_DESCRIPTION`], with metadata `note` [`AWKWARD_NOTE`],
/// and a business time with nanoseconds to truncate.
pub fn awkward(n: u128) -> CommandKind {
    let mut awkward = backdated(n, "equity:capital", "assets:cash", 42, 2);
    if let CommandKind::RecordTransfer(spec) = &mut awkward {
        spec.description = AWKWARD_DESCRIPTION.into();
        spec.metadata = Metadata::parse(BTreeMap::from([(
            "note".to_owned(),
            AWKWARD_NOTE.to_owned(),
        )]))
        .expect("metadata");
        spec.effective_at = spec
            .effective_at
            .map(|at| at + chrono::Duration::nanoseconds(123_456_789));
    }
    awkward
}

pub async fn stored(store: &EventStore, ledger: &str) -> Vec<tally_projector::StoredEvent> {
    store
        .read_stream_payloads(ledger, 0, 10_000)
        .await
        .expect("read")
        .into_iter()
        .map(tally_projector::StoredEvent::from)
        .collect()
}

pub struct Traffic {
    pub writers: Writers,
    pub store: EventStore,
}

impl Traffic {
    pub async fn start(pool: &PgPool) -> Self {
        let store = EventStore::new(pool.clone());
        let writers = Writers::new(store.clone(), WriterConfig::default());
        let traffic = Self { writers, store };
        for ledger in ["alpha", "beta"] {
            traffic
                .must(
                    ledger,
                    CommandKind::CreateLedger {
                        name: ledger.into(),
                    },
                )
                .await;
            for (account, account_type) in [
                ("equity:capital", AccountType::Equity),
                ("assets:cash", AccountType::Asset),
                ("assets:bank", AccountType::Asset),
                ("expenses:rent", AccountType::Expense),
            ] {
                traffic
                    .must(
                        ledger,
                        CommandKind::OpenAccount {
                            code: code(account),
                            account_type,
                            currency: Currency::new(usd(), 2).expect("valid"),
                            limits: Limits::default(),
                            metadata: Metadata::parse(BTreeMap::new()).expect("empty"),
                        },
                    )
                    .await;
            }
        }
        traffic
    }

    pub async fn must(&self, ledger: &str, kind: CommandKind) {
        let ledger = LedgerId::parse(ledger).expect("valid ledger");
        let answer = self
            .writers
            .submit(
                &ledger,
                Submission {
                    kind,
                    metadata: meta(),
                },
            )
            .await;
        assert!(matches!(answer, Ok(Ok(_))), "command refused: {answer:?}");
    }

    /// Commands appended together, each accepted on its own.
    pub async fn batch(&self, ledger: &str, kinds: Vec<CommandKind>) {
        let ledger = LedgerId::parse(ledger).expect("valid ledger");
        let submissions = kinds
            .into_iter()
            .map(|kind| Submission {
                kind,
                metadata: meta(),
            })
            .collect();
        let answers = self
            .writers
            .submit_batch(&ledger, submissions, false)
            .await
            .expect("batch taken");
        assert!(
            answers.iter().all(|a| a.is_ok()),
            "a command was refused: {:?}",
            answers.iter().find(|a| a.is_err())
        );
    }

    /// A mix of every kind of posting: plain, backdated, pending posted in part, voided, reversed.
    pub async fn mixed(&self, ledger: &str, base: u128) {
        self.must(
            ledger,
            transfer(base, "equity:capital", "assets:cash", 10_000),
        )
        .await;
        self.must(
            ledger,
            transfer(base + 1, "assets:cash", "assets:bank", 2_500),
        )
        .await;
        let mut backdated = transfer(base + 2, "assets:bank", "expenses:rent", 700);
        if let CommandKind::RecordTransfer(spec) = &mut backdated {
            spec.effective_at = Some(chrono::Utc::now() - chrono::Duration::days(3));
        }
        self.must(ledger, backdated).await;
        let mut pending = transfer(base + 3, "assets:cash", "expenses:rent", 900);
        if let CommandKind::RecordTransfer(spec) = &mut pending {
            spec.pending = Some(PendingSpec {
                timeout_secs: 3_600,
            });
        }
        self.must(ledger, pending.clone()).await;
        self.must(
            ledger,
            CommandKind::PostPending(PostPending {
                id: TransferId(Uuid::from_u128(base + 3)),
                amounts: Some(vec![
                    Amount::new(600).expect("positive"),
                    Amount::new(600).expect("positive"),
                ]),
                effective_at: None,
            }),
        )
        .await;
        let mut voided = transfer(base + 4, "assets:cash", "expenses:rent", 50);
        if let CommandKind::RecordTransfer(spec) = &mut voided {
            spec.pending = Some(PendingSpec {
                timeout_secs: 3_600,
            });
        }
        self.must(ledger, voided).await;
        self.must(
            ledger,
            CommandKind::VoidPending {
                id: TransferId(Uuid::from_u128(base + 4)),
            },
        )
        .await;
        self.must(
            ledger,
            CommandKind::ReverseTransfer(ReversalSpec {
                id: TransferId(Uuid::from_u128(base + 5)),
                original: TransferId(Uuid::from_u128(base + 1)),
                reason: ReasonCode::parse("wrong_account").expect("valid"),
                effective_at: None,
            }),
        )
        .await;
    }
}

impl Traffic {
    /// Account administration and a period close: every event kind that is not a posting.
    pub async fn admin(&self, ledger: &str) {
        let rent = code("expenses:rent");
        self.must(ledger, CommandKind::FreezeAccount { code: rent.clone() })
            .await;
        self.must(ledger, CommandKind::UnfreezeAccount { code: rent.clone() })
            .await;
        self.must(
            ledger,
            CommandKind::SetAccountLimits {
                code: rent.clone(),
                limits: Limits::new(Some(-1_000_000), Some(1_000_000)).expect("valid"),
            },
        )
        .await;
        self.must(
            ledger,
            CommandKind::SetAccountMetadata {
                code: rent,
                metadata: Metadata::parse(BTreeMap::from([(
                    "owner".to_owned(),
                    "facilities".to_owned(),
                )]))
                .expect("valid"),
            },
        )
        .await;
        self.must(
            ledger,
            CommandKind::OpenAccount {
                code: code("assets:old"),
                account_type: AccountType::Asset,
                currency: Currency::new(usd(), 2).expect("valid"),
                limits: Limits::default(),
                metadata: Metadata::default(),
            },
        )
        .await;
        self.must(
            ledger,
            CommandKind::CloseAccount {
                code: code("assets:old"),
            },
        )
        .await;
        self.must(
            ledger,
            CommandKind::ClosePeriod {
                through: chrono::Utc::now() - chrono::Duration::days(10),
            },
        )
        .await;
    }
}

/// Polls `check` until it holds, for at most `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Whether every ledger's projection has reached the store's head.
pub async fn caught_up(pool: &PgPool) -> bool {
    match tally_projector::rebuild::status(pool).await {
        Ok(rows) => !rows.is_empty() && rows.iter().all(|ledger| ledger.projected == ledger.stored),
        Err(_) => false,
    }
}

#[track_caller]
pub fn assert_exact(differences: Vec<(String, i64)>) {
    assert!(
        differences.is_empty(),
        "read models differ from a fresh projection: {differences:?}"
    );
}

/// The live read models equal a fresh rebuild of the store.
pub async fn assert_same_as_rebuild(pool: &PgPool, store: &EventStore) {
    let differences = tally_projector::rebuild::differences(pool, store)
        .await
        .expect("compare");
    assert_exact(differences);
}

/// Projects `ledger` from the store (one the test never delivered), then compares with a rebuild.
pub async fn catch_up_and_compare(pool: &PgPool, store: &EventStore, ledger: &str) {
    tally_projector::catch_up(pool, store, "read", ledger)
        .await
        .expect("catch up");
    assert_same_as_rebuild(pool, store).await;
}

/// Waits up to 30 s for every ledger's projection to reach the store's head; `failure` says what not.
pub async fn assert_caught_up(pool: &PgPool, failure: &str) {
    assert!(eventually(30, || caught_up(pool)).await, "{failure}");
}
