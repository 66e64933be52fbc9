//! Commands that print for people or scripts keep their stdout to that output: logs (here at `info`,
//! where sqlx and the migrations speak) go to stderr, so `tally events … | jq` and friends work.

use std::process::Stdio;

use crate::support::Install;

async fn stdout_of(install: &Install, args: &[&str]) -> String {
    let output = install
        .command(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("tally runs");
    assert!(
        output.status.success(),
        "tally {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[tokio::test]
async fn reports_and_event_listings_print_nothing_but_their_output_on_stdout() {
    let install = Install::new();
    assert!(install.run(&["demo"]).await, "tally demo");

    let status = stdout_of(&install, &["projections", "status"]).await;
    let mut lines = status.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(header, ["ledger", "projected", "stored", "lag"], "{status}");
    for line in lines {
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(columns.len(), 4, "a table row, not a log line: {line:?}");
        assert!(
            columns[1..].iter().all(|c| c.parse::<i64>().is_ok()),
            "{line:?}"
        );
    }

    let events = stdout_of(&install, &["events", "demo", "--limit", "5"]).await;
    assert_eq!(events.lines().count(), 5, "{events}");
    for line in events.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line is one JSON event");
    }

    let verify = stdout_of(&install, &["verify", "demo"]).await;
    assert!(
        verify.lines().all(|l| l.starts_with("demo")),
        "one line per ledger: {verify}"
    );
    install.clean().await;
}
