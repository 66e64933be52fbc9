//! The relay against the real PostgreSQL and RabbitMQ, with its own database, exchange and queue.

mod relay;
