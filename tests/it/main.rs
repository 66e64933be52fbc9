//! End-to-end tests: the `tally` program run as an operator runs it, against the real PostgreSQL and
//! RabbitMQ, one module per scenario.

mod cli_output;
mod support;
mod walkthrough;
mod whole_process;
