//! Query API: serves balances, statements, transfers and reports from the read models through a cache.
//!
//! Along the request path: [`extract`] and [`params`] parse the query, [`routes`] hold one module per
//! resource, [`state`] applies `Tally-Min-Version` and the [`cache`], [`read`] holds the SQL, [`export`]
//! streams CSV/NDJSON, [`error`] maps every failure to one problem+json answer. In the background,
//! [`versions`] follows each ledger's projected version, [`invalidation`] listens to the event stream,
//! [`live`] fans changes out as server-sent events. [`app`] starts and serves it all.

pub mod app;
pub mod cache;
pub mod dto;
pub mod error;
pub mod export;
pub mod extract;
pub mod invalidation;
pub mod live;
pub mod openapi;
pub mod params;
pub mod read;
pub mod routes;
pub mod state;
pub mod versions;

pub use app::{Application, QueryConfig, QueryService};
pub use error::QueryError;
