//! The group-commit writer against a real PostgreSQL: one database per test.

mod concurrency;
mod cross_ledger;
mod fixtures;
mod idempotency;
mod snapshots;
