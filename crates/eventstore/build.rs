//! Rebuilds the crate when a migration is added, so `MIGRATOR` never embeds a stale set of migrations.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
