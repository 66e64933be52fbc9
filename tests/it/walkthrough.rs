//! The README's walk-through, run as written against `tally all` on a fresh installation: the
//! `sh` block after "A first transfer" is read from README.md and executed by bash, with only the
//! address replaced by the installation's own. Every `curl` must answer 2xx (the live stream, which
//! never ends by itself, must at least greet), so a README line that stops working fails here.

use std::process::Stdio;

use crate::support::{Install, client};

/// The first `sh` code block after the walk-through's heading line.
fn walkthrough_block(readme: &str) -> String {
    let start = readme
        .find("A first transfer")
        .expect("README has the walk-through");
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("a closed block") + open;
    rest[open..close].to_string()
}

/// Makes every `curl` in the block strict: `--fail-with-body` and a bound on time. A streaming call
/// (`-N`) is cut after three seconds and passes only if the stream said hello.
const STRICT_CURL: &str = r#"
set -euo pipefail
curl() {
  local out rc=0
  if [[ " $* " == *" -N "* ]]; then
    out=$(command curl -sS --max-time 3 "$@") || rc=$?
    if [[ $rc != 28 || $out != *"event: hello"* ]]; then
      echo "live stream failed (exit $rc): curl $* -> $out" >&2; return 1
    fi
  else
    out=$(command curl -sS --fail-with-body --max-time 10 "$@") || {
      echo "failed: curl $* -> $out" >&2; return 1; }
  fi
  printf '%s\n' "$out"
}
"#;

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let block = walkthrough_block(&readme);
    assert!(
        block.contains("https://127.0.0.1:8443"),
        "the walk-through names the default address"
    );
    let install = Install::new();
    let mut server = install.start(&client()).await;

    let script = format!(
        "{STRICT_CURL}\n{}",
        block.replace("https://127.0.0.1:8443", &install.base)
    );
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("bash runs");
    let _ = server.kill().await;
    install.clean().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The statement export is CSV and the balance read saw the transfer it waited for.
    assert!(stdout.contains("\"posted\":\"1000\""), "{stdout}");
}
