//! `tally`: one binary whose subcommands run each role of the service and the operator tooling.

fn main() -> anyhow::Result<()> {
    tally::main()
}
