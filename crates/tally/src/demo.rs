//! `tally demo`: seeds a ledger `demo` with a small company's books (two currencies, a year of monthly
//! sales, salaries and rent, a pending reservation, a reversal and a closed half-year), so a fresh
//! install has something to look at. Transfer ids are fixed, so running it again changes nothing.

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::PgPool;
use tally_domain::{
    AccountCode, AccountType, Amount, CommandKind, Currency, CurrencyCode, DomainError, LedgerId,
    LegSpec, Limits, Metadata, PendingSpec, ReasonCode, ReversalSpec, Side, TransferId,
    TransferSpec,
};
use tally_eventstore::{EventMetadata, EventStore};
use tally_writer::{Submission, WriterConfig, Writers};
use uuid::Uuid;

const ACCOUNTS: [(&str, AccountType, &str); 12] = [
    ("assets:bank:checking", AccountType::Asset, "USD"),
    ("assets:bank:eur", AccountType::Asset, "EUR"),
    ("assets:receivables", AccountType::Asset, "USD"),
    ("liabilities:payables", AccountType::Liability, "USD"),
    ("liabilities:loan", AccountType::Liability, "USD"),
    ("equity:capital", AccountType::Equity, "USD"),
    ("equity:capital-eur", AccountType::Equity, "EUR"),
    ("revenue:sales", AccountType::Revenue, "USD"),
    ("revenue:services", AccountType::Revenue, "USD"),
    ("expenses:rent", AccountType::Expense, "USD"),
    ("expenses:salaries", AccountType::Expense, "USD"),
    ("expenses:software", AccountType::Expense, "USD"),
];

fn parsed<T, E: std::fmt::Display>(value: Result<T, E>) -> anyhow::Result<T> {
    value.map_err(|e| anyhow::anyhow!("demo data: {e}"))
}

/// Fixed ids in a range of their own, so seeding twice is recognised as the same transfers.
fn demo_id(n: u128) -> TransferId {
    TransferId(Uuid::from_u128(
        0xdeb0_0000_0000_0000_0000_0000_0000_0000 + n,
    ))
}

fn day(month: u32, day: u32) -> anyhow::Result<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, month, day, 9, 0, 0)
        .single()
        .context("a demo date")
}

/// The demo's commands in order; transfers are numbered as they are added, which fixes their ids.
#[derive(Default)]
struct Books {
    commands: Vec<CommandKind>,
    transfers: u128,
}

impl Books {
    fn next_id(&mut self) -> TransferId {
        self.transfers += 1;
        demo_id(self.transfers)
    }

    fn open(
        &mut self,
        code: &str,
        account_type: AccountType,
        currency: &str,
    ) -> anyhow::Result<()> {
        self.commands.push(CommandKind::OpenAccount {
            code: parsed(AccountCode::parse(code))?,
            account_type,
            currency: parsed(Currency::new(parsed(CurrencyCode::parse(currency))?, 2))?,
            limits: Limits::default(),
            metadata: Metadata::default(),
        });
        Ok(())
    }

    /// A two-leg transfer of `cents` from `credit` to `debit`, numbered but not yet recorded.
    fn spec(
        &mut self,
        (debit, credit): (&str, &str),
        cents: i128,
        currency: &str,
        at: DateTime<Utc>,
        description: &str,
    ) -> anyhow::Result<TransferSpec> {
        let currency = parsed(CurrencyCode::parse(currency))?;
        let leg = |account: &str, side| -> anyhow::Result<LegSpec> {
            Ok(LegSpec {
                account: parsed(AccountCode::parse(account))?,
                side,
                amount: parsed(Amount::new(cents))?,
                currency: currency.clone(),
            })
        };
        Ok(TransferSpec {
            id: self.next_id(),
            legs: vec![leg(debit, Side::Debit)?, leg(credit, Side::Credit)?],
            effective_at: Some(at),
            description: description.to_owned(),
            metadata: Metadata::default(),
            pending: None,
        })
    }

    /// Records a two-leg transfer and answers its id.
    fn book(
        &mut self,
        accounts: (&str, &str),
        cents: i128,
        at: DateTime<Utc>,
        description: &str,
    ) -> anyhow::Result<TransferId> {
        self.book_in(accounts, cents, "USD", at, description)
    }

    fn book_in(
        &mut self,
        accounts: (&str, &str),
        cents: i128,
        currency: &str,
        at: DateTime<Utc>,
        description: &str,
    ) -> anyhow::Result<TransferId> {
        let spec = self.spec(accounts, cents, currency, at, description)?;
        let id = spec.id;
        self.commands.push(CommandKind::RecordTransfer(spec));
        Ok(id)
    }
}

/// One month of trading: invoices and payments growing with the month, services, rent, salaries, software.
fn trade(books: &mut Books, month: u32) -> anyhow::Result<()> {
    let growth = i128::from(month);
    let sales = 1_200_000 + growth * 150_000;
    let payments = 1_000_000 + growth * 140_000;
    books.book(
        ("assets:receivables", "revenue:sales"),
        sales,
        day(month, 5)?,
        "Monthly sales invoiced",
    )?;
    books.book(
        ("assets:bank:checking", "assets:receivables"),
        payments,
        day(month, 20)?,
        "Customer payments",
    )?;
    books.book(
        ("assets:bank:checking", "revenue:services"),
        300_000,
        day(month, 12)?,
        "Support contracts",
    )?;
    books.book(
        ("expenses:rent", "assets:bank:checking"),
        450_000,
        day(month, 1)?,
        "Office rent",
    )?;
    books.book(
        ("expenses:salaries", "assets:bank:checking"),
        1_100_000,
        day(month, 28)?,
        "Salaries",
    )?;
    books.book(
        ("expenses:software", "liabilities:payables"),
        35_000,
        day(month, 10)?,
        "Software subscriptions",
    )?;
    Ok(())
}

fn commands() -> anyhow::Result<Vec<CommandKind>> {
    let mut books = Books::default();
    books.commands.push(CommandKind::CreateLedger {
        name: "Demo books".into(),
    });
    for (code, account_type, currency) in ACCOUNTS {
        books.open(code, account_type, currency)?;
    }
    books.book(
        ("assets:bank:checking", "equity:capital"),
        50_000_000,
        day(1, 2)?,
        "Founders' capital",
    )?;
    books.book_in(
        ("assets:bank:eur", "equity:capital-eur"),
        10_000_000,
        "EUR",
        day(1, 3)?,
        "EU subsidiary capital",
    )?;
    books.book(
        ("assets:bank:checking", "liabilities:loan"),
        20_000_000,
        day(1, 15)?,
        "Bank loan",
    )?;
    for month in 1..=10 {
        trade(&mut books, month)?;
    }
    // A double-booked invoice, reversed.
    let duplicate = books.book(
        ("expenses:software", "liabilities:payables"),
        35_000,
        day(3, 10)?,
        "Software subscriptions (booked twice)",
    )?;
    let reversal = ReversalSpec {
        id: books.next_id(),
        original: duplicate,
        reason: parsed(ReasonCode::parse("duplicate"))?,
        effective_at: Some(day(3, 11)?),
    };
    books.commands.push(CommandKind::ReverseTransfer(reversal));
    // A card hold not yet settled: pending, visible in `pending` and `available`.
    let mut hold = books.spec(
        ("expenses:software", "assets:bank:checking"),
        99_000,
        "USD",
        day(10, 30)?,
        "Card hold: annual licence",
    )?;
    hold.effective_at = None;
    hold.pending = Some(PendingSpec {
        timeout_secs: 30 * 24 * 3600,
    });
    books.commands.push(CommandKind::RecordTransfer(hold));
    books.commands.push(CommandKind::ClosePeriod {
        through: Utc
            .with_ymd_and_hms(2026, 6, 30, 23, 59, 59)
            .single()
            .context("a demo date")?,
    });
    Ok(books.commands)
}

/// Seeds the demo ledger unless it exists already.
pub async fn seed(pool: &PgPool) -> anyhow::Result<()> {
    let ledger = parsed(LedgerId::parse("demo"))?;
    let writers = Writers::new(EventStore::new(pool.clone()), WriterConfig::default());
    let metadata = EventMetadata {
        actor: "demo-seed".into(),
        client: "tally demo".into(),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
    };
    let mut applied = 0;
    for kind in commands()? {
        let first = matches!(kind, CommandKind::CreateLedger { .. });
        match writers
            .submit(
                &ledger,
                Submission {
                    kind,
                    metadata: metadata.clone(),
                },
            )
            .await
            .context("write the demo data")?
        {
            Ok(_) => applied += 1,
            Err(DomainError::LedgerAlreadyExists) if first => {
                println!("ledger `demo` exists already; nothing seeded");
                writers.shutdown().await;
                return Ok(());
            }
            Err(refused) => bail!("demo data refused: {refused}"),
        }
    }
    writers.shutdown().await;
    println!("ledger `demo` seeded with {applied} commands");
    Ok(())
}
