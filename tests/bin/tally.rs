//! The `tally` program, built by this crate so that its tests can run it as a child process
//! (`CARGO_BIN_EXE_*` names only a package's own binaries); it is the same `tally::main`.

fn main() -> anyhow::Result<()> {
    tally::main()
}
