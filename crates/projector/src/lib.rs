//! Projector: consumes ledger events from RabbitMQ and keeps the read models (schema `read`) exact.
