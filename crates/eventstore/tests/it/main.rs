//! Integration tests of the event store against a real PostgreSQL, one fresh database per test.

mod append;
mod append_many;
mod concurrency;
mod immutability;
mod read_all;
mod snapshots;
mod support;
mod verify;
mod versions;
