//! The `tally` command line: subcommands that run each role of the service and the operator tooling.
//! A library so that the end-to-end tests (`tests/`) can build the same program as a binary of their own.

mod db;
mod demo;
mod projections;
mod roles;
mod tooling;

use clap::{Parser, Subcommand};

// Every role allocates small, short-lived objects per event and request (payloads, rows, answers), which
// mimalloc serves from thread-local pages; declared here, it serves every binary built on this library.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tally", version, about = "Event-sourced double-entry ledger")]
struct Cli {
    /// PostgreSQL holding the event store and the read models.
    #[arg(
        long,
        global = true,
        env = "TALLY_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/tally"
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// `CommandApi` is the role's name (`tally command-api`), not a stutter of the enum's.
#[allow(clippy::enum_variant_names)]
enum Command {
    /// Run every role in one process (the single-machine deployment).
    All,
    /// Run the command API: the write side over HTTPS (migrates first).
    CommandApi,
    /// Run the query API: cached reads of the read models over HTTPS (migrates first).
    QueryApi,
    /// Run the outbox relay: publish committed events to RabbitMQ.
    Relay,
    /// Run the projector: keep the read models from the event stream.
    Projector,
    /// Inspect and rebuild the read models.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Seed the ledger `demo` with a year of example books (does nothing if it exists).
    Demo,
    /// Print the OpenAPI 3.1 document of the public API.
    Openapi,
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Print a ledger's events as NDJSON, oldest first.
    Events {
        ledger: String,
        /// Start after this stream version.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Recompute the hash chain of one ledger (or all) and report the first break.
    Verify {
        /// Omit to verify every ledger.
        ledger: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Each ledger's projected version against the store's, and the lag between them.
    Status,
    /// Build fresh read models from the event store and swap them in (blue/green).
    Rebuild,
    /// Compare the live read models with a fresh projection; exit code 2 if they differ.
    Verify,
}

/// Parses the arguments and runs the subcommand they name.
#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    tally_server::telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Command::All => {
            let pool = db::connect_and_migrate(&cli.database_url).await?;
            roles::all(pool).await
        }
        Command::CommandApi => {
            let pool = db::connect_and_migrate(&cli.database_url).await?;
            roles::command_api(pool).await
        }
        Command::QueryApi => {
            let pool = db::connect_and_migrate(&cli.database_url).await?;
            roles::query_api(pool).await
        }
        Command::Relay => {
            let pool = db::connect_and_migrate(&cli.database_url).await?;
            roles::relay(pool).await
        }
        Command::Projector => {
            let pool = db::connect_and_migrate(&cli.database_url).await?;
            roles::projector(pool).await
        }
        Command::Projections(command) => {
            let pool = db::connect_and_migrate(&cli.database_url).await?;
            match command {
                ProjectionsCommand::Status => projections::status(&pool).await,
                ProjectionsCommand::Rebuild => projections::rebuild(&pool).await,
                ProjectionsCommand::Verify => {
                    if !projections::verify(&pool).await? {
                        std::process::exit(2);
                    }
                    Ok(())
                }
            }
        }
        Command::Demo => {
            let pool = db::connect_and_migrate(&cli.database_url).await?;
            demo::seed(&pool).await
        }
        Command::Openapi => {
            let document = roles::public_document();
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(())
        }
        Command::Migrate => {
            db::connect_and_migrate(&cli.database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Events {
            ledger,
            after,
            limit,
        } => {
            let pool = db::connect(&cli.database_url).await?;
            tooling::print_events(&pool, &ledger, after, limit).await
        }
        Command::Verify { ledger } => {
            let pool = db::connect(&cli.database_url).await?;
            let intact = tooling::verify(&pool, ledger.as_deref()).await?;
            if !intact {
                std::process::exit(2);
            }
            Ok(())
        }
    }
}
