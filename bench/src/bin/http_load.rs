//! Closed-loop HTTPS load generator for the command API (issue 4), run by `bench/run-http` and
//! `bench/run-projection`.
//!
//! `--clients` tasks, each with its own HTTP/1.1 keep-alive connection (reqwest + rustls, trusting only the
//! given certificate), post transfers to one ledger and wait for each answer before sending the next, like
//! pgbench clients. With `--batch 0` each request is one transfer (`POST /v1/ledgers/{ledger}/transfers`)
//! and only 201 answers count; with `--batch N` each request carries N transfers to the batch endpoint and
//! only items the 200 answer reports as accepted count. Every transfer has a fresh UUIDv7 id and amounts
//! are decimal strings. Figures are taken over `--seconds` after `--warmup`; the result is one JSON line.
//!
//! `--setup` first creates the ledger with two unbounded USD accounts through the API.

// The same allocator as the `tally` binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Closed-loop HTTPS load on the command API")]
struct Args {
    /// e.g. https://127.0.0.1:18443
    #[arg(long)]
    base_url: String,
    /// PEM certificate the client trusts (the server's development certificate).
    #[arg(long)]
    cert: std::path::PathBuf,
    #[arg(long, default_value = "bench")]
    ledger: String,
    /// Create the ledger and its accounts first.
    #[arg(long)]
    setup: bool,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Transfers per request to the batch endpoint; 0 posts single transfers.
    #[arg(long, default_value_t = 0)]
    batch: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// When given, the group-commit batch size is counted from `events.tx` after the run.
    #[arg(long)]
    database_url: Option<String>,
}

const FROM: &str = "equity:capital";
const TO: &str = "expenses:bench";

#[derive(Default)]
struct Tally {
    /// Latencies of requests answered inside the window, in microseconds.
    latencies: Vec<u32>,
    /// Transfers accepted inside the window.
    transfers: u64,
    requests: u64,
    rejected_items: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Appends one two-leg transfer with a fresh id to `body`. Written as text rather than built as a
/// `serde_json::Value` and serialised: the load generator shares the two cores with the server, and the
/// value trees of a thousand-item batch were a tenth of the machine.
fn push_transfer(body: &mut String, amount: &str) {
    let id = Uuid::now_v7();
    let _ = write!(
        body,
        r#"{{"id":"{id}","legs":[{{"account":"{FROM}","side":"credit","amount":"{amount}","currency":"USD"}},{{"account":"{TO}","side":"debit","amount":"{amount}","currency":"USD"}}]}}"#
    );
}

/// A request body: one transfer, or a batch of `batch` transfers.
fn request_body(batch: usize, amount: &str) -> String {
    if batch == 0 {
        let mut body = String::with_capacity(256);
        push_transfer(&mut body, amount);
        return body;
    }
    let mut body = String::with_capacity(16 + batch * 230);
    body.push_str(r#"{"transfers":["#);
    for i in 0..batch {
        if i > 0 {
            body.push(',');
        }
        push_transfer(&mut body, amount);
    }
    body.push_str("]}");
    body
}

/// The counts of a batch answer; serde skips its per-item results without building them.
#[derive(Deserialize)]
struct BatchCounts {
    accepted: u64,
    rejected: u64,
}

fn client(pem: &[u8]) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem)?)
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn setup(client: &reqwest::Client, base: &str, ledger: &str) -> anyhow::Result<()> {
    let post = |path: String, body: Value| {
        let request = client.post(format!("{base}{path}")).json(&body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            if status.as_u16() != 201 {
                bail!("{path}: {status} {text}");
            }
            anyhow::Ok(())
        }
    };
    post(
        "/v1/ledgers".into(),
        json!({"id": ledger, "name": "Benchmark"}),
    )
    .await?;
    for (code, kind) in [(FROM, "equity"), (TO, "expense")] {
        post(
            format!("/v1/ledgers/{ledger}/accounts"),
            json!({"code": code, "type": kind, "currency": "USD", "scale": 2}),
        )
        .await?;
    }
    Ok(())
}

async fn run_client(
    client: reqwest::Client,
    url: String,
    batch: usize,
    measure_from: Instant,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut n: u64 = 0;
    while Instant::now() < until {
        n += 1;
        let amount = (1 + n % 100).to_string();
        let body = request_body(batch, &amount);
        let started = Instant::now();
        let result = async {
            let response = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            anyhow::Ok((status, bytes))
        }
        .await;
        let counted = started >= measure_from && Instant::now() <= until;
        match result {
            Ok((status, bytes)) => {
                if !counted {
                    continue;
                }
                tally.requests += 1;
                *tally.statuses.entry(status).or_default() += 1;
                tally
                    .latencies
                    .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                match (batch, status) {
                    (0, 201) => tally.transfers += 1,
                    (0, _) => {}
                    (_, 200) => match serde_json::from_slice::<BatchCounts>(&bytes) {
                        Ok(counts) => {
                            tally.transfers += counts.accepted;
                            tally.rejected_items += counts.rejected;
                        }
                        Err(error) => {
                            tally.errors += 1;
                            tally
                                .first_error
                                .get_or_insert_with(|| format!("unreadable batch answer: {error}"));
                        }
                    },
                    _ => {}
                }
                if !(200..300).contains(&status) && tally.first_error.is_none() {
                    tally.first_error = Some(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                    ));
                }
            }
            Err(error) => {
                if counted {
                    tally.errors += 1;
                    tally
                        .first_error
                        .get_or_insert_with(|| format!("{error:#}"));
                }
            }
        }
    }
    tally
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn unix_micros(at: Instant) -> i64 {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64;
    if at >= now {
        wall + (at - now).as_micros() as i64
    } else {
        wall - (now - at).as_micros() as i64
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pem = std::fs::read(&args.cert).with_context(|| format!("read {:?}", args.cert))?;
    let base = args.base_url.trim_end_matches('/').to_owned();
    if args.setup {
        setup(&client(&pem)?, &base, &args.ledger)
            .await
            .context("create the ledger and accounts")?;
    }
    let url = if args.batch == 0 {
        format!("{base}/v1/ledgers/{}/transfers", args.ledger)
    } else {
        format!("{base}/v1/ledgers/{}/transfers/batch", args.ledger)
    };
    let pool = match &args.database_url {
        Some(database_url) => Some(sqlx::PgPool::connect(database_url).await?),
        None => None,
    };
    let count_tx =
        async |pool: &Option<sqlx::PgPool>| -> anyhow::Result<(i64, i64)> {
            Ok(match pool {
                Some(pool) => sqlx::query_as(
                    "select count(*), count(distinct tx::text) from events where stream_id = $1",
                )
                .bind(&args.ledger)
                .fetch_one(pool)
                .await?,
                None => (0, 0),
            })
        };
    let (events_before, commits_before) = count_tx(&pool).await?;

    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        tasks.push(tokio::spawn(run_client(
            client(&pem)?,
            url.clone(),
            args.batch,
            measure_from,
            until,
        )));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await?;
        all.latencies.extend(t.latencies);
        all.transfers += t.transfers;
        all.requests += t.requests;
        all.rejected_items += t.rejected_items;
        all.errors += t.errors;
        for (status, count) in t.statuses {
            *all.statuses.entry(status).or_default() += count;
        }
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let (events_after, commits_after) = count_tx(&pool).await?;
    all.latencies.sort_unstable();
    let window = args.seconds as f64;
    let ok_status = if args.batch == 0 { 201 } else { 200 };
    let non_2xx: BTreeMap<String, u64> = all
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(s, c)| (s.to_string(), *c))
        .collect();
    let events = events_after - events_before;
    let commits = commits_after - commits_before;
    let line = json!({
        "bench": if args.batch == 0 { "http_single" } else { "http_batch" },
        "clients": args.clients,
        "batch": args.batch,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "window_start_us": unix_micros(measure_from),
        "window_end_us": unix_micros(until),
        "transfers_per_s": (all.transfers as f64 / window).round(),
        "requests_per_s": (all.requests as f64 / window).round(),
        "p50_ms": percentile(&all.latencies, 0.50),
        "p99_ms": percentile(&all.latencies, 0.99),
        "ok_answers": all.statuses.get(&ok_status).copied().unwrap_or(0),
        "non_2xx": non_2xx,
        "transport_errors": all.errors,
        "rejected_items": all.rejected_items,
        "first_error": all.first_error,
        "events_in_run": events,
        "commits_in_run": commits,
        "mean_commit_batch": if commits > 0 { ((events as f64 / commits as f64) * 10.0).round() / 10.0 } else { 0.0 },
    });
    println!("{line}");
    Ok(())
}
