//! The command API over real HTTPS against a real PostgreSQL: one database and one server per test.

mod bad_input;
mod batch;
mod corrections;
mod idempotency;
mod ledgers;
mod openapi;
mod ops;
mod support;
mod transfers;
mod two_phase;
