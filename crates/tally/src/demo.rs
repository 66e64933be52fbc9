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

/// A two-leg transfer; its id is set by [`demo_id`] when it is recorded.
fn transfer(
    debit: &str,
    credit: &str,
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
        id: demo_id(0),
        legs: vec![leg(debit, Side::Debit)?, leg(credit, Side::Credit)?],
        effective_at: Some(at),
        description: description.to_owned(),
        metadata: Metadata::default(),
        pending: None,
    })
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

fn commands() -> anyhow::Result<Vec<CommandKind>> {
    let mut out = vec![CommandKind::CreateLedger {
        name: "Demo books".into(),
    }];
    for (code, account_type, currency) in ACCOUNTS {
        let scale = 2;
        out.push(CommandKind::OpenAccount {
            code: parsed(AccountCode::parse(code))?,
            account_type,
            currency: parsed(Currency::new(parsed(CurrencyCode::parse(currency))?, scale))?,
            limits: Limits::default(),
            metadata: Metadata::default(),
        });
    }
    let mut n = 0u128;
    let mut next = || {
        n += 1;
        n
    };
    let t = |debit, credit, cents, currency, at, description| {
        transfer(debit, credit, cents, currency, at, description)
    };
    let record = |spec: anyhow::Result<TransferSpec>, id: u128| -> anyhow::Result<CommandKind> {
        let mut spec = spec?;
        spec.id = demo_id(id);
        Ok(CommandKind::RecordTransfer(spec))
    };
    out.push(record(
        t(
            "assets:bank:checking",
            "equity:capital",
            50_000_000,
            "USD",
            day(1, 2)?,
            "Founders' capital",
        ),
        next(),
    )?);
    out.push(record(
        t(
            "assets:bank:eur",
            "equity:capital-eur",
            10_000_000,
            "EUR",
            day(1, 3)?,
            "EU subsidiary capital",
        ),
        next(),
    )?);
    out.push(record(
        t(
            "assets:bank:checking",
            "liabilities:loan",
            20_000_000,
            "USD",
            day(1, 15)?,
            "Bank loan",
        ),
        next(),
    )?);
    for month in 1..=10 {
        let growth = i128::from(month);
        out.push(record(
            t(
                "assets:receivables",
                "revenue:sales",
                1_200_000 + growth * 150_000,
                "USD",
                day(month, 5)?,
                "Monthly sales invoiced",
            ),
            next(),
        )?);
        out.push(record(
            t(
                "assets:bank:checking",
                "assets:receivables",
                1_000_000 + growth * 140_000,
                "USD",
                day(month, 20)?,
                "Customer payments",
            ),
            next(),
        )?);
        out.push(record(
            t(
                "assets:bank:checking",
                "revenue:services",
                300_000,
                "USD",
                day(month, 12)?,
                "Support contracts",
            ),
            next(),
        )?);
        out.push(record(
            t(
                "expenses:rent",
                "assets:bank:checking",
                450_000,
                "USD",
                day(month, 1)?,
                "Office rent",
            ),
            next(),
        )?);
        out.push(record(
            t(
                "expenses:salaries",
                "assets:bank:checking",
                1_100_000,
                "USD",
                day(month, 28)?,
                "Salaries",
            ),
            next(),
        )?);
        out.push(record(
            t(
                "expenses:software",
                "liabilities:payables",
                35_000,
                "USD",
                day(month, 10)?,
                "Software subscriptions",
            ),
            next(),
        )?);
    }
    // A double-booked invoice, reversed.
    let duplicate = next();
    out.push(record(
        t(
            "expenses:software",
            "liabilities:payables",
            35_000,
            "USD",
            day(3, 10)?,
            "Software subscriptions (booked twice)",
        ),
        duplicate,
    )?);
    out.push(CommandKind::ReverseTransfer(ReversalSpec {
        id: demo_id(next()),
        original: demo_id(duplicate),
        reason: parsed(ReasonCode::parse("duplicate"))?,
        effective_at: Some(day(3, 11)?),
    }));
    // A card hold not yet settled: pending, visible in `pending` and `available`.
    let mut hold = t(
        "expenses:software",
        "assets:bank:checking",
        99_000,
        "USD",
        day(10, 30)?,
        "Card hold: annual licence",
    )?;
    hold.id = demo_id(next());
    hold.effective_at = None;
    hold.pending = Some(PendingSpec {
        timeout_secs: 30 * 24 * 3600,
    });
    out.push(CommandKind::RecordTransfer(hold));
    out.push(CommandKind::ClosePeriod {
        through: Utc
            .with_ymd_and_hms(2026, 6, 30, 23, 59, 59)
            .single()
            .context("a demo date")?,
    });
    Ok(out)
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
