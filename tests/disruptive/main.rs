//! Tests that restart shared services (PostgreSQL, RabbitMQ). They are `#[ignore]`d in the parallel run
//! and `scripts/test` runs them in a separate serial pass with `--ignored --test-threads=1`.

mod postgres_restart;
