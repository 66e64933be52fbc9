//! Integration tests of tally-server: real servers on 127.0.0.1:0, called over HTTPS (and plain HTTP).

mod json;
mod lifecycle;
mod ops;
mod routing;
mod support;
mod tls;
