//! The relay and projector against the real PostgreSQL and RabbitMQ: each test has its own database,
//! exchange and queue, and deletes its broker objects at the end.

mod delivery;
mod end_to_end;
mod fixtures;
