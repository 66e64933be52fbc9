//! The query API against real read models built from real events: every route, bitemporal answers
//! checked against a replay of the store, cursor stability under concurrent inserts, the cache and
//! read-your-writes, live updates, and bad input.

mod audit;
mod bad_input;
mod bitemporal;
mod cache;
mod oracle;
mod routes;
mod support;
