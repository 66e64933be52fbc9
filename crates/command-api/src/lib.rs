//! Command API: decides ledger commands through the group-commit writer and answers over HTTPS.
//!
//! Along the request path: [`extract`] reads the JSON body, [`context`] settles who acts and why,
//! [`dto`] parses the body into a domain command, [`routes`] submit it to the per-ledger writer and
//! answer with the consistency token, [`error`] maps every failure to one problem+json answer.
//! [`app`] builds and runs the service; [`openapi`] describes it.

pub mod app;
pub mod context;
pub mod dto;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;
pub mod state;

pub use app::{Application, Config, router};
pub use error::ApiError;
pub use state::AppState;
